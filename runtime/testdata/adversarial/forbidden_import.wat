;; Imports what this host does not provide: a WASI file function, a made-up
;; host function, and a memory. Refused at upload, before compiling.
(module
  (import "wasi_snapshot_preview1" "path_open" (func (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "spacetime_v1" "exec" (func (param i32 i32) (result i32)))
  (import "env" "memory" (memory 1))
  (export "memory" (memory 0))
  (func (export "__describe_module__") (param i32))
  (func (export "__call_reducer__") (param i32 i64 i64 i64 i64 i64 i64 i64 i32 i32 i32) (result i32) (i32.const 0)))
