;; A pointer past the end of memory for every host function (the server's
;; adversarial suite, server/adversarial_test.go). oob(fn, mode) inserts a
;; marker row, calls host function number fn with its pointers past the end
;; of the one-page memory (mode 0: 0xFFFFFFF0, where pointer + length wraps
;; around; mode 1: 65534, straddling the end) and its ids and handles valid,
;; then fails with "errno NN", the errno the host returned. The host must
;; answer OUT_OF_BOUNDS (1; WASI: EFAULT, 21), never trap or write, and keep
;; nothing of the call. ok(id) is an honest reducer.
;; Rebuild: wat2wasm oob.wat -o oob.wasm
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
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))

  (memory (export "memory") 1 1)

  ;; 16: "T"; 24: "T_id_idx"; 64: "errno NN"; 256: the ModuleDef.
  (data (i32.const 16) "T")
  (data (i32.const 24) "T_id_idx")
  (data (i32.const 64) "errno 00")
  (data (i32.const 256) "{\"abi_version\":1,\"tables\":[{\"name\":\"T\",\"columns\":[{\"name\":\"id\",\"type\":\"u64\",\"primary_key\":true}]}],\"reducers\":[{\"name\":\"init\",\"params\":[],\"lifecycle\":\"init\"},{\"name\":\"ok\",\"params\":[{\"name\":\"id\",\"type\":\"u64\"}]},{\"name\":\"oob\",\"params\":[{\"name\":\"fn\",\"type\":\"u32\"},{\"name\":\"mode\",\"type\":\"u32\"}]}]}\00")

  (func $strlen (param $p i32) (result i32) (local $i i32)
    (block $done (loop $l
      (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (local.get $i))

  ;; bytes_sink_write takes its length through memory (in/out, at 0).
  (func $write (param $sink i32) (param $p i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $len))
    (drop (call $bytes_sink_write (local.get $sink) (local.get $p) (i32.const 0))))

  (func (export "__describe_module__") (param $sink i32)
    (call $write (local.get $sink) (i32.const 256) (call $strlen (i32.const 256))))

  (func $tid (result i32)
    (drop (call $table_id_from_name (i32.const 16) (i32.const 1) (i32.const 4)))
    (i32.load (i32.const 4)))

  (func $iid (result i32)
    (drop (call $index_id_from_name (i32.const 24) (i32.const 8) (i32.const 4)))
    (i32.load (i32.const 4)))

  (func $insert (param $id i64) (result i32)
    (i64.store (i32.const 2048) (local.get $id))
    (i32.store (i32.const 8) (i32.const 8))
    (call $row_insert (call $tid) (i32.const 2048) (i32.const 8)))

  ;; hostcall calls host function fn with bad pointers.
  (func $hostcall (param $fn i32) (param $bad i32) (param $args i32) (param $err i32) (result i32)
    (local $tid i32) (local $iid i32) (local $iter i32)
    (local.set $tid (call $tid))
    (local.set $iid (call $iid))
    (drop (call $table_scan (local.get $tid) (i32.const 12)))
    (local.set $iter (i32.load (i32.const 12)))
    (block $b21 (block $b20 (block $b19 (block $b18 (block $b17 (block $b16 (block $b15 (block $b14 (block $b13 (block $b12 (block $b11
    (block $b10 (block $b9 (block $b8 (block $b7 (block $b6 (block $b5 (block $b4 (block $b3 (block $b2 (block $b1 (block $b0
      (br_table $b0 $b1 $b2 $b3 $b4 $b5 $b6 $b7 $b8 $b9 $b10 $b11 $b12 $b13 $b14 $b15 $b16 $b17 $b18 $b19 $b20 $b21 (local.get $fn)))
      (return (call $table_id_from_name (local.get $bad) (i32.const 16) (local.get $bad))))
      (return (call $index_id_from_name (local.get $bad) (i32.const 16) (local.get $bad))))
      (return (call $table_row_count (local.get $tid) (local.get $bad))))
      (return (call $table_scan (local.get $tid) (local.get $bad))))
      (return (call $index_scan_point (local.get $iid) (local.get $bad) (i32.const 16) (local.get $bad))))
      (return (call $index_scan_range (local.get $iid) (local.get $bad) (i32.const 16) (i32.const 0) (local.get $bad) (i32.const 16) (i32.const 0) (local.get $bad))))
      (return (call $row_iter_advance (local.get $iter) (local.get $bad) (local.get $bad))))
      (return (call $row_iter_close (local.get $bad))))
      (return (call $row_insert (local.get $tid) (local.get $bad) (local.get $bad))))
      (return (call $row_update (local.get $iid) (local.get $bad) (local.get $bad))))
      (return (call $row_delete_by_index_point (local.get $iid) (local.get $bad) (i32.const 16) (local.get $bad))))
      (return (call $bytes_source_read (local.get $args) (local.get $bad) (local.get $bad))))
      (return (call $bytes_source_len (local.get $args) (local.get $bad))))
      (return (call $bytes_sink_write (local.get $err) (local.get $bad) (local.get $bad))))
      (return (call $jwt_verify (local.get $bad) (i32.const 16) (local.get $bad))))
      (return (call $identity_from_claims (local.get $bad) (i32.const 16) (local.get $bad) (i32.const 16) (local.get $bad))))
      (return (call $caller_claims (local.get $bad))))
      (return (call $console_log (i32.const 2) (local.get $bad) (i32.const 16))))
      (return (call $fd_write (i32.const 1) (local.get $bad) (i32.const 1) (local.get $bad))))
      (return (call $random_get (local.get $bad) (i32.const 16))))
      (return (call $clock_time_get (i32.const 0) (i64.const 0) (local.get $bad))))
    (i32.const 99))

  (func (export "__call_reducer__")
    (param $id i32) (param i64 i64 i64 i64 i64 i64) (param $ts i64)
    (param $args i32) (param $ret i32) (param $err i32) (result i32)
    (local $e i32)
    (block $b2 (block $b1 (block $b0
      (br_table $b0 $b1 $b2 (local.get $id)))
      ;; 0 init
      (return (i32.const 0)))
      ;; 1 ok(id u64)
      (i32.store (i32.const 8) (i32.const 8))
      (drop (call $bytes_source_read (local.get $args) (i32.const 2040) (i32.const 8)))
      (return (i32.ne (call $insert (i64.load (i32.const 2040))) (i32.const 0))))
    ;; 2 oob(fn u32, mode u32)
    (i32.store (i32.const 8) (i32.const 8))
    (drop (call $bytes_source_read (local.get $args) (i32.const 2040) (i32.const 8)))
    (drop (call $insert (i64.const 5000)))
    (local.set $e (call $hostcall
      (i32.load (i32.const 2040))
      (select (i32.const 65534) (i32.const -16) (i32.load (i32.const 2044)))
      (local.get $args) (local.get $err)))
    (i32.store8 (i32.const 70) (i32.add (i32.const 48) (i32.div_u (local.get $e) (i32.const 10))))
    (i32.store8 (i32.const 71) (i32.add (i32.const 48) (i32.rem_u (local.get $e) (i32.const 10))))
    (call $write (local.get $err) (i32.const 64) (i32.const 8))
    (i32.const 1))
)
