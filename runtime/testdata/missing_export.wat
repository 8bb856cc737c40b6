(module
  (memory (export "memory") 1)
  (func (export "__describe_module__") (param i32)))
