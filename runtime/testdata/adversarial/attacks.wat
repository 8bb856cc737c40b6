;; Hostile reducers for the adversarial suite (runtime/adversarial_test.go).
;; Each attack first inserts a marker row into T, so the test can see that
;; nothing of the failed transaction was kept; ok(id) is an honest reducer
;; that shows the database still serves afterwards.
;; Rebuild: wat2wasm attacks.wat -o attacks.wasm
(module
  (import "spacetime_v1" "table_id_from_name" (func $table_id_from_name (param i32 i32 i32) (result i32)))
  (import "spacetime_v1" "table_scan" (func $table_scan (param i32 i32) (result i32)))
  (import "spacetime_v1" "row_insert" (func $row_insert (param i32 i32 i32) (result i32)))
  (import "spacetime_v1" "bytes_source_read" (func $bytes_source_read (param i32 i32 i32) (result i32)))
  (import "spacetime_v1" "bytes_sink_write" (func $bytes_sink_write (param i32 i32 i32) (result i32)))
  (import "spacetime_v1" "console_log" (func $console_log (param i32 i32 i32) (result i32)))

  ;; One page to start, no maximum of its own: only the host limits it.
  (memory (export "memory") 1)

  ;; 16: table name "T"; 64: an error message; 256: the ModuleDef.
  (data (i32.const 16) "T")
  (data (i32.const 64) "row limit")
  (data (i32.const 256) "{\"abi_version\":1,\"tables\":[{\"name\":\"T\",\"columns\":[{\"name\":\"id\",\"type\":\"u64\",\"primary_key\":true}]}],\"reducers\":[{\"name\":\"init\",\"params\":[],\"lifecycle\":\"init\"},{\"name\":\"ok\",\"params\":[{\"name\":\"id\",\"type\":\"u64\"}]},{\"name\":\"infinite_loop\",\"params\":[]},{\"name\":\"call_tree\",\"params\":[]},{\"name\":\"recursion\",\"params\":[]},{\"name\":\"memory_bomb\",\"params\":[]},{\"name\":\"log_flood\",\"params\":[]},{\"name\":\"insert_until_limit\",\"params\":[]},{\"name\":\"leak_iterators\",\"params\":[]},{\"name\":\"bulk_loop\",\"params\":[]}]}\00")

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

  ;; insert(id) returns row_insert's errno.
  (func $insert (param $id i64) (result i32)
    (i64.store (i32.const 2048) (local.get $id))
    (i32.store (i32.const 8) (i32.const 8))
    (call $row_insert (call $tid) (i32.const 2048) (i32.const 8)))

  ;; 2^n calls and no loop: the attack WithCloseOnContextDone cannot stop.
  (func $tree (param $n i32)
    (if (local.get $n)
      (then
        (call $tree (i32.sub (local.get $n) (i32.const 1)))
        (call $tree (i32.sub (local.get $n) (i32.const 1))))))

  (func $recurse (param $n i64) (result i64)
    (i64.add (call $recurse (i64.add (local.get $n) (i64.const 1))) (i64.const 1)))

  (func (export "__call_reducer__")
    (param $id i32) (param i64 i64 i64 i64 i64 i64) (param $ts i64)
    (param $args i32) (param $ret i32) (param $err i32) (result i32)
    (local $i i64)
    (block $b9 (block $b8 (block $b7 (block $b6 (block $b5 (block $b4 (block $b3 (block $b2 (block $b1 (block $b0
      (br_table $b0 $b1 $b2 $b3 $b4 $b5 $b6 $b7 $b8 $b9 (local.get $id)))
      ;; 0 init
      (return (i32.const 0)))
      ;; 1 ok(id u64)
      (i32.store (i32.const 8) (i32.const 8))
      (drop (call $bytes_source_read (local.get $args) (i32.const 2040) (i32.const 8)))
      (return (i32.ne (call $insert (i64.load (i32.const 2040))) (i32.const 0))))
      ;; 2 infinite_loop
      (drop (call $insert (i64.const 1002)))
      (loop $forever (br $forever))
      (return (i32.const 0)))
      ;; 3 call_tree: 2^62 calls
      (drop (call $insert (i64.const 1003)))
      (call $tree (i32.const 62))
      (return (i32.const 0)))
      ;; 4 recursion without end
      (drop (call $insert (i64.const 1004)))
      (drop (call $recurse (i64.const 0)))
      (return (i32.const 0)))
      ;; 5 memory_bomb: grow 1 MiB at a time until refused, then trap, as
      ;; an allocator that cannot get memory does
      (drop (call $insert (i64.const 1005)))
      (loop $grow
        (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
      (unreachable))
      ;; 6 log_flood: 60 KiB lines, forever, ignoring LIMIT_EXCEEDED
      (drop (call $insert (i64.const 1006)))
      (loop $log
        (drop (call $console_log (i32.const 2) (i32.const 0) (i32.const 61440)))
        (br $log))
      (return (i32.const 0)))
      ;; 7 insert_until_limit: rows 2000, 2001, ... until an insert is
      ;; refused; then fail with "row limit"
      (local.set $i (i64.const 2000))
      (loop $ins
        (if (i32.eqz (call $insert (local.get $i)))
          (then
            (local.set $i (i64.add (local.get $i) (i64.const 1)))
            (br $ins))))
      (call $write (local.get $err) (i32.const 64) (i32.const 9))
      (return (i32.const 1)))
      ;; 8 leak_iterators: open scans and never close them, forever
      (drop (call $insert (i64.const 1008)))
      (loop $leak
        (drop (call $table_scan (call $tid) (i32.const 12)))
        (br $leak))
      (return (i32.const 0)))
    ;; 9 bulk_loop: fill the whole memory, forever: a few instructions an
    ;; iteration, each doing 64 KiB of work
    (drop (call $insert (i64.const 1009)))
    (loop $fill
      (memory.fill (i32.const 0) (i32.const 0) (i32.mul (memory.size) (i32.const 65536)))
      (br $fill))
    (i32.const 0))
)
