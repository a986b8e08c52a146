;; Writes into the board's shared memory, table and global (see board.wat).
(module
  (import "board" "mem" (memory 1 16))
  (import "board" "slots" (table 8 funcref))
  (import "board" "writes" (global $writes (mut i64)))
  (type $unary (func (param i32) (result i32)))

  (func $double (type $unary) (i32.mul (local.get 0) (i32.const 2)))
  (func $square (type $unary) (i32.mul (local.get 0) (local.get 0)))
  (func $negate (type $unary) (i32.sub (i32.const 0) (local.get 0)))
  (elem declare func $double $square $negate)

  ;; Writes n words (n <= 16384) from an LCG seeded with `seed` at offset 0 and returns
  ;; their wrapping sum.
  (func $fill (export "fill") (param $seed i32) (param $n i32) (result i32)
    (local $i i32) (local $x i32) (local $sum i32)
    (local.set $x (local.get $seed))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $x
          (i32.add (i32.mul (local.get $x) (i32.const 1103515245)) (i32.const 12345)))
        (i32.store (i32.shl (local.get $i) (i32.const 2)) (local.get $x))
        (local.set $sum (i32.add (local.get $sum) (local.get $x)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (global.set $writes (i64.add (global.get $writes) (i64.const 1)))
    (local.get $sum))

  ;; Fills the first 4096 words `rounds` times, seeds 1, 2, ...; the last fill's sum. A long
  ;; task: another task of the group waits for it and then sees the last fill only.
  (func (export "churn") (param $rounds i32) (result i32)
    (local $r i32) (local $sum i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $r) (local.get $rounds)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (local.set $sum (call $fill (local.get $r) (i32.const 4096)))
        (br $next)))
    (local.get $sum))

  ;; Puts function k (0 double, 1 square, 2 negate) into slot `slot`; returns the slot.
  (func (export "install") (param $k i32) (param $slot i32) (result i32)
    (table.set (local.get $slot)
      (select (result funcref)
        (ref.func $double)
        (select (result funcref) (ref.func $square) (ref.func $negate)
          (i32.eq (local.get $k) (i32.const 1)))
        (i32.eqz (local.get $k))))
    (global.set $writes (i64.add (global.get $writes) (i64.const 1)))
    (local.get $slot))

  ;; Grows the shared memory by `delta` pages; the old size, or -1.
  (func (export "grow") (param $delta i32) (result i32)
    (memory.grow (local.get $delta)))

  ;; Writes `value` at byte `addr` (out of bounds traps).
  (func (export "poke") (param $addr i32) (param $value i32) (result i32)
    (i32.store (local.get $addr) (local.get $value))
    (local.get $value))
)
