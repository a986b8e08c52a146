;; Hot code for the relocation tests: functions that keep calling and returning across each
;; other, so a running thread has RIPs and return addresses in each of them, and moving one of
;; them re-targets `call` sites in the others (and, for `$mix`, a funcref table entry).
;; `switch` dispatches through a `br_table` jump table at every step.
(module
  (type $mixer (func (param i32 i32) (result i32)))
  (table 1 funcref)
  (elem (i32.const 0) $mix)

  ;; One mixing step: (x * 0x9e3779b1) rotated left by 5, xor n. For n = -1 (which no task
  ;; here passes) the step is murmur3's finalizer applied twice instead: that cold path makes
  ;; `$mix` larger than the code generator's inlining budget (48 operators, docs/inlining.md),
  ;; so `tree` and `spin` keep calling it across islands, which is what these tests move
  ;; (`tools/tests/pae_inline.rs` checks that the calls stay).
  (func $mix (param $x i32) (param $n i32) (result i32)
    (if (i32.eq (local.get $n) (i32.const -1))
      (then
        (local.set $x (i32.xor (local.get $x) (i32.shr_u (local.get $x) (i32.const 16))))
        (local.set $x (i32.mul (local.get $x) (i32.const 0x85ebca6b)))
        (local.set $x (i32.xor (local.get $x) (i32.shr_u (local.get $x) (i32.const 13))))
        (local.set $x (i32.mul (local.get $x) (i32.const 0xc2b2ae35)))
        (local.set $x (i32.xor (local.get $x) (i32.shr_u (local.get $x) (i32.const 16))))
        (local.set $x (i32.xor (local.get $x) (i32.shr_u (local.get $x) (i32.const 16))))
        (local.set $x (i32.mul (local.get $x) (i32.const 0x85ebca6b)))
        (local.set $x (i32.xor (local.get $x) (i32.shr_u (local.get $x) (i32.const 13))))
        (local.set $x (i32.mul (local.get $x) (i32.const 0xc2b2ae35)))
        (local.set $x (i32.xor (local.get $x) (i32.shr_u (local.get $x) (i32.const 16))))
        (return (local.get $x))))
    (i32.xor
      (i32.rotl (i32.mul (local.get $x) (i32.const 0x9e3779b1)) (i32.const 5))
      (local.get $n)))

  ;; Tree recursion like fib_rec, mixing at every node.
  (func $tree (export "tree") (param $n i32) (result i32)
    (if (result i32) (i32.lt_s (local.get $n) (i32.const 2))
      (then (call $mix (local.get $n) (i32.const 7)))
      (else
        (call $mix
          (i32.add
            (call $tree (i32.sub (local.get $n) (i32.const 1)))
            (call $tree (i32.sub (local.get $n) (i32.const 2))))
          (local.get $n)))))

  ;; `rounds` trees of `depth`, chained.
  (func $spin (export "spin") (param $rounds i32) (param $depth i32) (result i32)
    (local $acc i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $rounds)))
        (local.set $acc
          (call $mix
            (i32.add (local.get $acc) (call $tree (local.get $depth)))
            (local.get $rounds)))
        (local.set $rounds (i32.sub (local.get $rounds) (i32.const 1)))
        (br $next)))
    (local.get $acc))

  ;; `spin` with the chaining step called through the table.
  (func (export "spin_indirect") (param $rounds i32) (param $depth i32) (result i32)
    (local $acc i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $rounds)))
        (local.set $acc
          (call_indirect (type $mixer)
            (i32.add (local.get $acc) (call $tree (local.get $depth)))
            (local.get $rounds)
            (i32.const 0)))
        (local.set $rounds (i32.sub (local.get $rounds) (i32.const 1)))
        (br $next)))
    (local.get $acc))

  ;; A state machine of `steps` steps from `seed`: each step's handler is picked by a 10-way
  ;; `br_table` (a jump table: a thread is often between its `lea` and `jmp`), some handlers
  ;; call `mix`; the next state is the accumulator mod 10.
  (func (export "switch") (param $steps i32) (param $seed i32) (result i32)
    (local $state i32) (local $acc i32)
    (local.set $acc (local.get $seed))
    (block $out
      (loop $top
        (br_if $out (i32.eqz (local.get $steps)))
        (local.set $steps (i32.sub (local.get $steps) (i32.const 1)))
        (block $tail
          (block $h9 (block $h8 (block $h7 (block $h6 (block $h5
          (block $h4 (block $h3 (block $h2 (block $h1 (block $h0
            (br_table $h0 $h1 $h2 $h3 $h4 $h5 $h6 $h7 $h8 $h9 $h9 (local.get $state)))
            (local.set $acc (call $mix (local.get $acc) (local.get $steps))) (br $tail))
            (local.set $acc (i32.xor (local.get $acc) (i32.shr_u (local.get $acc) (i32.const 7))))
            (br $tail))
            (local.set $acc (i32.add (local.get $acc) (i32.const 0x9e37))) (br $tail))
            (local.set $acc (i32.rotl (local.get $acc) (i32.const 9))) (br $tail))
            (local.set $acc (call $mix (local.get $acc) (i32.const 3))) (br $tail))
            (local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 5)) (i32.const 1)))
            (br $tail))
            (local.set $acc (i32.sub (local.get $acc) (local.get $steps))) (br $tail))
            (local.set $acc (i32.xor (local.get $acc) (i32.const 0x1234567))) (br $tail))
            (local.set $acc (call $mix (i32.add (local.get $acc) (i32.const 1)) (local.get $steps)))
            (br $tail))
          (local.set $acc (i32.add (local.get $acc) (i32.shl (local.get $acc) (i32.const 3)))))
        (local.set $state (i32.rem_u (local.get $acc) (i32.const 10)))
        (br $top)))
    (local.get $acc))
)
