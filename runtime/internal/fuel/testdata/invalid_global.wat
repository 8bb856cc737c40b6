;; Invalid: writes global 1, which does not exist, and is the index __fuel
;; would take. The rewrite must refuse it rather than make it valid.
(module
  (global $g (mut i64) (i64.const 0))
  (func (export "refill") (global.set 1 (i64.const 1000000))))
