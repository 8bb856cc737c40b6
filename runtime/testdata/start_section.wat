(module
  ;; A start function runs while the module is instantiated, before the
  ;; host can set a deadline: this one would spin forever.
  (memory (export "memory") 1)
  (func $spin (loop (br 0)))
  (start $spin)
  (func (export "__describe_module__") (param i32))
  (func (export "__call_reducer__")
    (param i32 i64 i64 i64 i64 i64 i64 i64 i32 i32 i32) (result i32)
    (i32.const 0)))
