;; Traps in _initialize: the upload is refused, nothing is created.
(module
  (memory (export "memory") 1)
  (func (export "_initialize") unreachable)
  (func (export "__describe_module__") (param i32))
  (func (export "__call_reducer__") (param i32 i64 i64 i64 i64 i64 i64 i64 i32 i32 i32) (result i32) (i32.const 0)))
