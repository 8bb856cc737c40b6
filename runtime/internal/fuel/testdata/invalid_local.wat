;; Invalid: reads local 1 of a function with one local; the fuel local would be 1.
(module
  (func (export "peek") (param i32) (result i64) (local.get 1)))
