;; Calls vecmath's vector functions across the chunk boundary (v128 parameters and results).
(module
  (import "vecmath" "mul_add" (func $mul_add (param v128 v128 v128) (result v128)))
  (import "vecmath" "hsum" (func $hsum (param v128) (result i32)))
  (import "vecmath" "rev_max" (func $rev_max (param v128 v128) (result v128 i32)))

  (func $vec (param i32 i32 i32 i32) (result v128)
    (i32x4.replace_lane 3
      (i32x4.replace_lane 2
        (i32x4.replace_lane 1 (i32x4.splat (local.get 0)) (local.get 1))
        (local.get 2))
      (local.get 3)))

  ;; The dot product of (a0..a3) and (b0..b3).
  (func (export "dot") (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
    (call $hsum
      (call $mul_add
        (call $vec (local.get 0) (local.get 1) (local.get 2) (local.get 3))
        (call $vec (local.get 4) (local.get 5) (local.get 6) (local.get 7))
        (v128.const i32x4 0 0 0 0))))

  ;; x^4 + x^3 + x^2 + x by Horner's rule in four lanes (x, x+1, x+2, x+3), summed.
  (func (export "poly4") (param $x i32) (result i32)
    (local $v v128) (local $acc v128) (local $i i32)
    (local.set $v (call $vec (local.get $x) (i32.add (local.get $x) (i32.const 1))
      (i32.add (local.get $x) (i32.const 2)) (i32.add (local.get $x) (i32.const 3))))
    (local.set $acc (v128.const i32x4 1 1 1 1))
    (loop $next
      (local.set $acc (call $mul_add (local.get $acc) (local.get $v) (v128.const i32x4 1 1 1 1)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $next (i32.lt_u (local.get $i) (i32.const 3))))
    (call $hsum (i32x4.mul (local.get $acc) (local.get $v))))

  ;; The sum of max(reversed (a, b, c, d), floor) lanes, plus 1000 * the sign-bit mask.
  (func (export "rev_floor") (param i32 i32 i32 i32 i32) (result i32)
    (local $mask i32)
    (call $rev_max
      (call $vec (local.get 0) (local.get 1) (local.get 2) (local.get 3))
      (i32x4.splat (local.get 4)))
    (local.set $mask)
    (call $hsum)
    (i32.add (i32.mul (local.get $mask) (i32.const 1000))))
)
