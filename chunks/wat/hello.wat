;; Uses the kernel's `atoll` import module: prints a line, reads the cycle counter, yields.
(module
  (import "atoll" "print" (func $print (param i32 i32)))
  (import "atoll" "cycles" (func $cycles (result i64)))
  (import "atoll" "yield" (func $yield))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from a chunk")

  ;; Prints the greeting and returns its length.
  (func (export "hello") (result i32)
    (call $print (i32.const 16) (i32.const 18))
    (i32.const 18))

  ;; Yields `n` times; returns 1 if the cycle counter did not run backwards meanwhile.
  (func (export "spin") (param $n i32) (result i32)
    (local $start i64)
    (local.set $start (call $cycles))
    (block $done
      (loop $again
        (br_if $done (i32.le_s (local.get $n) (i32.const 0)))
        (call $yield)
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $again)))
    (i64.ge_u (call $cycles) (local.get $start)))
)
