;; A second version of abi_guest's schema that changes table T's column type; its init fails.
;; Rebuild: wat2wasm v2_changed_table.wat -o v2_changed_table.wasm
(module
  (import "spacetime_v1" "bytes_sink_write" (func $bytes_sink_write (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1 1)
  (data (i32.const 16) "init says no")
  (data (i32.const 256) "{\"abi_version\":1,\"tables\":[{\"name\":\"T\",\"columns\":[{\"name\":\"id\",\"type\":\"u32\",\"primary_key\":true}]}],\"reducers\":[{\"name\":\"init\",\"params\":[],\"lifecycle\":\"init\"},{\"name\":\"noop\",\"params\":[]}]}")
  (func $write (param $sink i32) (param $p i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $len))
    (drop (call $bytes_sink_write (local.get $sink) (local.get $p) (i32.const 0))))
  (func (export "__describe_module__") (param $sink i32)
    (call $write (local.get $sink) (i32.const 256) (i32.const 187)))
  ;; init (0) fails with "init says no"; noop (1) succeeds.
  (func (export "__call_reducer__")
    (param $id i32) (param i64 i64 i64 i64 i64 i64 i64) (param $args i32) (param $ret i32) (param $err i32) (result i32)
    (if (result i32) (i32.eqz (local.get $id))
      (then (call $write (local.get $err) (i32.const 16) (i32.const 12)) (i32.const 1))
      (else (i32.const 0)))))
