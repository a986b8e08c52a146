;; Dense f64 matrix multiply in linear memory: C = A x B with A[i][j] = i + j and
;; B[i][j] = i - j, for n x n matrices (n <= 32). Returns the sum of C's elements.
(module
  (memory (export "memory") 1)
  ;; Matrices live at A = 0, B = 8192, C = 16384 (32 * 32 * 8 = 8192 bytes each).
  (func $at (param $base i32) (param $n i32) (param $i i32) (param $j i32) (result i32)
    (i32.add (local.get $base)
      (i32.shl (i32.add (i32.mul (local.get $i) (local.get $n)) (local.get $j)) (i32.const 3))))

  (func $fill (param $n i32)
    (local $i i32) (local $j i32)
    (loop $rows
      (local.set $j (i32.const 0))
      (loop $cols
        (f64.store (call $at (i32.const 0) (local.get $n) (local.get $i) (local.get $j))
          (f64.convert_i32_s (i32.add (local.get $i) (local.get $j))))
        (f64.store (call $at (i32.const 8192) (local.get $n) (local.get $i) (local.get $j))
          (f64.convert_i32_s (i32.sub (local.get $i) (local.get $j))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br_if $cols (i32.lt_s (local.get $j) (local.get $n))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $rows (i32.lt_s (local.get $i) (local.get $n)))))

  (func $matmul (export "matmul") (param $n i32) (result f64)
    (local $i i32) (local $j i32) (local $k i32) (local $acc f64) (local $sum f64)
    (if (i32.or (i32.le_s (local.get $n) (i32.const 0)) (i32.gt_s (local.get $n) (i32.const 32)))
      (then (return (f64.const 0))))
    (call $fill (local.get $n))
    (loop $rows
      (local.set $j (i32.const 0))
      (loop $cols
        (local.set $acc (f64.const 0))
        (local.set $k (i32.const 0))
        (loop $dot
          (local.set $acc (f64.add (local.get $acc)
            (f64.mul
              (f64.load (call $at (i32.const 0) (local.get $n) (local.get $i) (local.get $k)))
              (f64.load (call $at (i32.const 8192) (local.get $n) (local.get $k) (local.get $j))))))
          (local.set $k (i32.add (local.get $k) (i32.const 1)))
          (br_if $dot (i32.lt_s (local.get $k) (local.get $n))))
        (f64.store (call $at (i32.const 16384) (local.get $n) (local.get $i) (local.get $j))
          (local.get $acc))
        (local.set $sum (f64.add (local.get $sum) (local.get $acc)))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br_if $cols (i32.lt_s (local.get $j) (local.get $n))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $rows (i32.lt_s (local.get $i) (local.get $n))))
    (local.get $sum))

  ;; Multiplies, then returns element C[n-1][0] (0 if n is out of range).
  (func (export "corner") (param $n i32) (result f64)
    (if (i32.or (i32.le_s (local.get $n) (i32.const 0)) (i32.gt_s (local.get $n) (i32.const 32)))
      (then (return (f64.const 0))))
    (drop (call $matmul (local.get $n)))
    (f64.load (call $at (i32.const 16384) (local.get $n)
      (i32.sub (local.get $n) (i32.const 1)) (i32.const 0))))
)
