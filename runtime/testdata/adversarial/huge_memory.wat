;; Asks for 4 GiB of memory at start (65536 pages): refused at upload,
;; before anything is allocated.
(module
  (memory (export "memory") 65536)
  (func (export "__describe_module__") (param i32))
  (func (export "__call_reducer__") (param i32 i64 i64 i64 i64 i64 i64 i64 i32 i32 i32) (result i32) (i32.const 0)))
