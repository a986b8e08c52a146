;; Vector helpers other chunks call with v128 arguments and results (see lanes.wat): 128-bit
;; values cross the chunk boundary in registers' worth of lanes, not through memory.
(module
  ;; a * b + c, lane by lane (i32x4, wrapping).
  (func (export "mul_add") (param $a v128) (param $b v128) (param $c v128) (result v128)
    (i32x4.add (i32x4.mul (local.get $a) (local.get $b)) (local.get $c)))
  ;; The wrapping sum of the four i32 lanes.
  (func (export "hsum") (param $v v128) (result i32)
    (i32.add
      (i32.add (i32x4.extract_lane 0 (local.get $v)) (i32x4.extract_lane 1 (local.get $v)))
      (i32.add (i32x4.extract_lane 2 (local.get $v)) (i32x4.extract_lane 3 (local.get $v)))))
  ;; Lanes reversed, and the lane-wise maximum with `m` (signed).
  (func (export "rev_max") (param $v v128) (param $m v128) (result v128 i32)
    (i32x4.max_s
      (i8x16.shuffle 12 13 14 15 8 9 10 11 4 5 6 7 0 1 2 3 (local.get $v) (local.get $v))
      (local.get $m))
    (i32x4.bitmask (local.get $v)))
)
