;; A hand-written guest against the raw ABI (version 1), for the runtime's
;; tests and benchmarks. Rebuild: wat2wasm abi_guest.wat -o abi_guest.wasm
;; (TestWATBuilds checks the committed .wasm matches when wat2wasm is on PATH).
(module
  (import "spacetime_v1" "table_id_from_name" (func $table_id_from_name (param i32 i32 i32) (result i32)))
  (import "spacetime_v1" "index_id_from_name" (func $index_id_from_name (param i32 i32 i32) (result i32)))
  (import "spacetime_v1" "table_row_count" (func $table_row_count (param i32 i32) (result i32)))
  (import "spacetime_v1" "table_scan" (func $table_scan (param i32 i32) (result i32)))
  (import "spacetime_v1" "index_scan_point" (func $index_scan_point (param i32 i32 i32 i32) (result i32)))
  (import "spacetime_v1" "index_scan_range" (func $index_scan_range (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "spacetime_v1" "row_iter_advance" (func $row_iter_advance (param i32 i32 i32) (result i32)))
  (import "spacetime_v1" "row_iter_close" (func $row_iter_close (param i32) (result i32)))
  (import "spacetime_v1" "row_insert" (func $row_insert (param i32 i32 i32) (result i32)))
  (import "spacetime_v1" "row_update" (func $row_update (param i32 i32 i32) (result i32)))
  (import "spacetime_v1" "row_delete_by_index_point" (func $row_delete_by_index_point (param i32 i32 i32 i32) (result i32)))
  (import "spacetime_v1" "bytes_source_read" (func $bytes_source_read (param i32 i32 i32) (result i32)))
  (import "spacetime_v1" "bytes_source_len" (func $bytes_source_len (param i32 i32) (result i32)))
  (import "spacetime_v1" "bytes_sink_write" (func $bytes_sink_write (param i32 i32 i32) (result i32)))
  (import "spacetime_v1" "jwt_verify" (func $jwt_verify (param i32 i32 i32) (result i32)))
  (import "spacetime_v1" "identity_from_claims" (func $identity_from_claims (param i32 i32 i32 i32 i32) (result i32)))
  (import "spacetime_v1" "caller_claims" (func $caller_claims (param i32) (result i32)))
  (import "spacetime_v1" "console_log" (func $console_log (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))

  (memory (export "memory") 1 1)

  ;; 16: table name "T"; 20: index name "T_id_idx"; 32: a valid row key (u64 7)
  (data (i32.const 16) "T")
  (data (i32.const 20) "T_id_idx")
  (data (i32.const 32) "\07\00\00\00\00\00\00\00")
  (data (i32.const 48) "boom")
  (data (i32.const 56) "hello from wat")
  ;; 256: the ModuleDef, NUL-terminated
  (data (i32.const 256) "{\"abi_version\":1,\"tables\":[{\"name\":\"T\",\"columns\":[{\"name\":\"id\",\"type\":\"u64\",\"primary_key\":true}]}],\"reducers\":[{\"name\":\"oob\",\"params\":[],\"return\":\"Bytes\"},{\"name\":\"insert\",\"params\":[{\"name\":\"id\",\"type\":\"u64\"}]},{\"name\":\"fail\",\"params\":[]},{\"name\":\"trap\",\"params\":[]},{\"name\":\"spin\",\"params\":[]},{\"name\":\"noop\",\"params\":[]},{\"name\":\"log\",\"params\":[]},{\"name\":\"hostcalls\",\"params\":[{\"name\":\"n\",\"type\":\"u32\"}]},{\"name\":\"init\",\"params\":[],\"lifecycle\":\"init\"},{\"name\":\"wasi\",\"params\":[],\"return\":\"Bytes\"}]}\00")

  ;; 1024: u32 length, then one errno byte per host call of the oob reducer.
  (global $n (mut i32) (i32.const 0))
  (func $rec (param $e i32)
    (i32.store8 (i32.add (i32.const 1028) (global.get $n)) (local.get $e))
    (global.set $n (i32.add (global.get $n) (i32.const 1))))

  (func $strlen (param $p i32) (result i32) (local $i i32)
    (block $done (loop $l
      (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (local.get $i))

  ;; write(sink, ptr, len): bytes_sink_write through the in/out length at 0.
  (func $write (param $sink i32) (param $p i32) (param $len i32) (result i32)
    (i32.store (i32.const 0) (local.get $len))
    (call $bytes_sink_write (local.get $sink) (local.get $p) (i32.const 0)))

  (func (export "__describe_module__") (param $sink i32)
    (drop (call $write (local.get $sink) (i32.const 256) (call $strlen (i32.const 256)))))

  ;; Every host function with pointers outside memory. Variant A wraps
  ;; (0xfffffff0 + 0x20); variant B overlaps the end of the 64 KiB memory.
  (func $oob (param $args i32) (param $ret i32) (local $tid i32) (local $iid i32) (local $it i32)
    (global.set $n (i32.const 0))
    (drop (call $table_id_from_name (i32.const 16) (i32.const 1) (i32.const 4)))
    (local.set $tid (i32.load (i32.const 4)))
    (drop (call $index_id_from_name (i32.const 20) (i32.const 8) (i32.const 4)))
    (local.set $iid (i32.load (i32.const 4)))
    (drop (call $table_scan (local.get $tid) (i32.const 4)))
    (local.set $it (i32.load (i32.const 4)))
    ;; a valid in/out length for functions that read one: 8
    (i32.store (i32.const 8) (i32.const 8))

    (call $rec (call $table_id_from_name (i32.const 0xfffffff0) (i32.const 0x20) (i32.const 4)))
    (call $rec (call $table_id_from_name (i32.const 16) (i32.const 1) (i32.const 65533)))
    (call $rec (call $index_id_from_name (i32.const 0xfffffff0) (i32.const 0x20) (i32.const 4)))
    (call $rec (call $index_id_from_name (i32.const 20) (i32.const 8) (i32.const 65533)))
    (call $rec (call $table_row_count (local.get $tid) (i32.const 0xfffffffc)))
    (call $rec (call $table_row_count (local.get $tid) (i32.const 65529)))
    (call $rec (call $table_scan (local.get $tid) (i32.const 0xfffffffe)))
    (call $rec (call $table_scan (local.get $tid) (i32.const 65533)))
    (call $rec (call $index_scan_point (local.get $iid) (i32.const 0xfffffff0) (i32.const 0x20) (i32.const 4)))
    (call $rec (call $index_scan_point (local.get $iid) (i32.const 32) (i32.const 8) (i32.const 65533)))
    (call $rec (call $index_scan_range (local.get $iid) (i32.const 0xfffffff0) (i32.const 0x20) (i32.const 0) (i32.const 32) (i32.const 8) (i32.const 0) (i32.const 4)))
    (call $rec (call $index_scan_range (local.get $iid) (i32.const 32) (i32.const 8) (i32.const 0) (i32.const 65530) (i32.const 8) (i32.const 0) (i32.const 4)))
    (call $rec (call $index_scan_range (local.get $iid) (i32.const 32) (i32.const 8) (i32.const 0) (i32.const 32) (i32.const 8) (i32.const 1) (i32.const 0xffffffff)))
    (call $rec (call $row_iter_advance (local.get $it) (i32.const 2048) (i32.const 0xfffffffe)))
    (call $rec (call $row_iter_advance (local.get $it) (i32.const 65530) (i32.const 8)))
    (call $rec (call $row_insert (local.get $tid) (i32.const 2048) (i32.const 65534)))
    (call $rec (call $row_insert (local.get $tid) (i32.const 65532) (i32.const 8)))
    (call $rec (call $row_update (local.get $iid) (i32.const 2048) (i32.const 0xffffffff)))
    (call $rec (call $row_update (local.get $iid) (i32.const 0xfffffffc) (i32.const 8)))
    (call $rec (call $row_delete_by_index_point (local.get $iid) (i32.const 0xfffffff0) (i32.const 0x20) (i32.const 4)))
    (call $rec (call $row_delete_by_index_point (local.get $iid) (i32.const 32) (i32.const 8) (i32.const 65533)))
    (call $rec (call $bytes_source_read (local.get $args) (i32.const 2048) (i32.const 65534)))
    (call $rec (call $bytes_source_read (local.get $args) (i32.const 65530) (i32.const 8)))
    (call $rec (call $bytes_source_len (local.get $args) (i32.const 0xfffffffd)))
    (call $rec (call $bytes_source_len (local.get $args) (i32.const 65533)))
    (call $rec (call $bytes_sink_write (local.get $ret) (i32.const 2048) (i32.const 65534)))
    (call $rec (call $bytes_sink_write (local.get $ret) (i32.const 65530) (i32.const 8)))
    (call $rec (call $jwt_verify (i32.const 0xfffffff0) (i32.const 0x20) (i32.const 4)))
    (call $rec (call $jwt_verify (i32.const 16) (i32.const 1) (i32.const 65533)))
    (call $rec (call $identity_from_claims (i32.const 0xfffffff0) (i32.const 0x20) (i32.const 16) (i32.const 1) (i32.const 4)))
    (call $rec (call $identity_from_claims (i32.const 16) (i32.const 1) (i32.const 65530) (i32.const 8) (i32.const 4)))
    (call $rec (call $identity_from_claims (i32.const 16) (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 65520)))
    (call $rec (call $caller_claims (i32.const 0xffffffff)))
    (call $rec (call $caller_claims (i32.const 65533)))
    (call $rec (call $console_log (i32.const 2) (i32.const 0xfffffff0) (i32.const 0x20)))
    (call $rec (call $console_log (i32.const 2) (i32.const 65530) (i32.const 8)))
    ;; row_iter_close has no pointer: a bad handle instead (10).
    (call $rec (call $row_iter_close (i32.const 0)))
    ;; the iterator opened above still works after all that: 9 = exhausted (empty table)
    (i32.store (i32.const 8) (i32.const 64))
    (call $rec (call $row_iter_advance (local.get $it) (i32.const 2048) (i32.const 8)))

    ;; return the errnos as Bytes: u32 length then the bytes
    (i32.store (i32.const 1024) (global.get $n))
    (drop (call $write (local.get $ret) (i32.const 1024) (i32.add (i32.const 4) (global.get $n)))))

  ;; insert(id u64): read the argument into the row buffer and insert it.
  (func $insert (param $args i32) (param $err i32) (result i32) (local $e i32)
    (i32.store (i32.const 8) (i32.const 8))
    (drop (call $bytes_source_read (local.get $args) (i32.const 2048) (i32.const 8)))
    (drop (call $table_id_from_name (i32.const 16) (i32.const 1) (i32.const 4)))
    (i32.store (i32.const 8) (i32.const 8))
    (local.set $e (call $row_insert (i32.load (i32.const 4)) (i32.const 2048) (i32.const 8)))
    (if (result i32) (local.get $e)
      (then (drop (call $write (local.get $err) (i32.const 48) (i32.const 4))) (i32.const 1))
      (else (i32.const 0))))

  (func $insert_fixed (param $id i64)
    (i64.store (i32.const 2048) (local.get $id))
    (drop (call $table_id_from_name (i32.const 16) (i32.const 1) (i32.const 4)))
    (i32.store (i32.const 8) (i32.const 8))
    (drop (call $row_insert (i32.load (i32.const 4)) (i32.const 2048) (i32.const 8))))

  (func (export "__call_reducer__")
    (param $id i32) (param i64 i64 i64 i64 i64 i64) (param $ts i64)
    (param $args i32) (param $ret i32) (param $err i32) (result i32)
    (local $i i32)
    (block $b9 (block $b8 (block $b7 (block $b6 (block $b5 (block $b4 (block $b3 (block $b2 (block $b1 (block $b0
      (br_table $b0 $b1 $b2 $b3 $b4 $b5 $b6 $b7 $b8 $b9 (local.get $id)))
      ;; 0 oob
      (call $oob (local.get $args) (local.get $ret))
      (return (i32.const 0)))
      ;; 1 insert
      (return (call $insert (local.get $args) (local.get $err))))
      ;; 2 fail: writes, then fails
      (call $insert_fixed (i64.const 999))
      (drop (call $write (local.get $err) (i32.const 48) (i32.const 4)))
      (return (i32.const 1)))
      ;; 3 trap: writes, then traps
      (call $insert_fixed (i64.const 998))
      (unreachable))
      ;; 4 spin forever
      (call $insert_fixed (i64.const 997))
      (loop $forever (br $forever))
      (return (i32.const 0)))
      ;; 5 noop
      (return (i32.const 0)))
      ;; 6 log
      (drop (call $console_log (i32.const 2) (i32.const 56) (i32.const 14)))
      (return (i32.const 0)))
      ;; 7 hostcalls(n u32): n calls of bytes_source_len
      (i32.store (i32.const 8) (i32.const 4))
      (drop (call $bytes_source_read (local.get $args) (i32.const 12) (i32.const 8)))
      (local.set $i (i32.load (i32.const 12)))
      (block $done (loop $l
        (br_if $done (i32.eqz (local.get $i)))
        (drop (call $bytes_source_len (local.get $args) (i32.const 4)))
        (local.set $i (i32.sub (local.get $i) (i32.const 1)))
        (br $l)))
      (return (i32.const 0)))
    ;; 8 init: inserts row 1
    (call $insert_fixed (i64.const 1))
    (return (i32.const 0)))
    ;; 9 wasi: returns Bytes of realtime clock (8), monotonic clock (8),
    ;; 16 random bytes, environ count and size, args count and size (4 each);
    ;; and writes "hello from wat" to stdout.
    (drop (call $clock_time_get (i32.const 0) (i64.const 1) (i32.const 3072)))
    (drop (call $clock_time_get (i32.const 1) (i64.const 1) (i32.const 3080)))
    (drop (call $random_get (i32.const 3088) (i32.const 16)))
    (drop (call $environ_sizes_get (i32.const 3104) (i32.const 3108)))
    (drop (call $args_sizes_get (i32.const 3112) (i32.const 3116)))
    (i32.store (i32.const 3200) (i32.const 56))
    (i32.store (i32.const 3204) (i32.const 14))
    (drop (call $fd_write (i32.const 1) (i32.const 3200) (i32.const 1) (i32.const 3208)))
    (i32.store (i32.const 3068) (i32.const 48))
    (drop (call $write (local.get $ret) (i32.const 3068) (i32.const 52)))
    (i32.const 0))
)
