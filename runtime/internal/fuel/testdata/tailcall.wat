;; Tail calls: return_call leaves the frame, so it must spend and count like a return.
(module
  (func $loop (export "tail_spin") (return_call $loop))
  (func $down (export "tail_down") (param $n i32) (result i32)
    (if (result i32) (local.get $n)
      (then (return_call $down (i32.sub (local.get $n) (i32.const 1))))
      (else (i32.const 42)))))
