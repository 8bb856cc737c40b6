;; Functions whose energy the fuel tests know in advance, and runaways the
;; metering must stop.
(module
  (type $ii (func (param i32) (result i32)))
  (import "env" "host" (func $host (param i32) (result i32)))
  (memory (export "memory") 1)
  (global $g (mut i32) (i32.const 0))
  (table 2 funcref)
  (elem (i32.const 0) $straight $count)

  ;; 4 instructions: const, const, add, end.
  (func $straight (export "straight") (param i32) (result i32)
    i32.const 1
    i32.const 2
    i32.add)

  ;; The loop body runs n times.
  (func $count (export "count") (param $n i32) (result i32)
    (local $i i32)
    (loop $l
      local.get $i
      i32.const 1
      i32.add
      local.tee $i
      local.get $n
      i32.lt_s
      br_if $l)
    local.get $i)

  (func (export "spin") (loop (br 0)))
  (func (export "empty_blocks") (loop (block) (br 0)))
  (func (export "spin_host") (loop (drop (call $host (i32.const 1))) (br 0)))

  ;; A loop-free call tree of 2^n calls.
  (func $tree (export "tree") (param $n i32)
    (if (local.get $n)
      (then
        (call $tree (i32.sub (local.get $n) (i32.const 1)))
        (call $tree (i32.sub (local.get $n) (i32.const 1))))))

  ;; Linear recursion n deep.
  (func $down (export "down") (param $n i32)
    (if (local.get $n) (then (call $down (i32.sub (local.get $n) (i32.const 1))))))

  (func $recurse (export "recurse") (call $recurse))

  ;; Several results: the wrapper block needs a type of its own.
  (func $multi (export "multi") (param i32) (result i32 i64)
    local.get 0
    i64.const 7)
  (func (export "call_multi") (result i32)
    (call $multi (i32.const 5))
    drop)

  ;; A branch to the function's own label and a return.
  (func (export "br_out") (param i32) (result i32)
    (br_if 0 (i32.const 10) (local.get 0))
    drop
    (if (i32.eq (local.get 0) (i32.const 0)) (then (return (i32.const 20))))
    i32.const 30)

  (func (export "indirect") (param i32) (result i32)
    (call_indirect (type $ii) (i32.const 3) (local.get 0)))

  (func (export "table_switch") (param i32) (result i32)
    (block $a (block $b (block $c
      (br_table $a $b $c 0 (local.get 0)))
      (return (i32.const 1)))
      (return (i32.const 2)))
    i32.const 3)

  (func (export "bulk") (param i32)
    (memory.fill (i32.const 0) (i32.const 0) (local.get 0)))

  (func (export "grow_table") (param i32) (result i32)
    (table.grow 0 (ref.null func) (local.get 0)))

  ;; Loops inside loops, left by branches to outer labels (br_if, br_table),
  ;; a loop with a result and a loop with a parameter: with Config.Refuel a
  ;; loop is wrapped in blocks, and every label crossing them renumbered.
  (func (export "nested") (param $n i32) (result i32) (local $i i32) (local $j i32) (local $acc i32)
    (block $out
      (loop $outer
        (local.set $j (i32.const 0))
        (block $next
          (loop $inner
            (local.set $acc (i32.add (local.get $acc) (local.get $j)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br_if $out (i32.gt_u (local.get $acc) (i32.const 100000)))
            (br_table $inner $next $inner (i32.eq (local.get $j) (i32.const 3)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $outer (i32.lt_u (local.get $i) (local.get $n)))))
    local.get $acc
    (loop (result i32) (i32.const 5))
    i32.add
    i32.const 2
    loop (type $ii)
      i32.const 1
      i32.add
    end
    i32.add)

  ;; A loop in a function with more locals than a check site hands over.
  (func (export "many_locals") (param $n i32) (result i32)
    (local i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64)
    (local i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64)
    (loop $l
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (local.get $n)))
    (local.get $n))

  ;; Unbounded recursion whose body is a loop: its depth check is the
  ;; loop head's (with Config.Refuel).
  (func $loop_recurse (export "loop_recurse") (param $n i32) (result i32)
    (loop $l
      (local.set $n (i32.add (local.get $n) (call $loop_recurse (local.get $n))))
      (br_if $l (i32.eqz (local.get $n))))
    (local.get $n))

  (func (export "set_global") (param i32) (global.set $g (local.get 0)))
  (func (export "fail") unreachable)
)
