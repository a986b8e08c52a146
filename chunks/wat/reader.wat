;; Reads the board's shared memory, table and global (see board.wat).
(module
  (import "board" "mem" (memory 1))
  (import "board" "slots" (table 1 funcref))
  (import "board" "writes" (global $writes (mut i64)))
  (import "board" "version" (global $version i32))
  (type $unary (func (param i32) (result i32)))

  ;; The wrapping sum of the first n words (what `writer.fill` returned).
  (func (export "sum") (param $n i32) (result i32)
    (local $i i32) (local $sum i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $sum
          (i32.add (local.get $sum) (i32.load (i32.shl (local.get $i) (i32.const 2)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $sum))

  ;; Calls the function installed in `slot` (by the writer) with x; an empty slot traps.
  (func (export "apply") (param $slot i32) (param $x i32) (result i32)
    (call_indirect (type $unary) (local.get $x) (local.get $slot)))

  ;; The board's write count, its version and the shared memory's size in pages.
  (func (export "status") (result i64 i32 i32)
    (global.get $writes)
    (global.get $version)
    (memory.size))

  ;; The word at byte `addr` (out of bounds traps, also past a size another chunk grew).
  (func (export "peek") (param $addr i32) (result i32)
    (i32.load (local.get $addr)))
)
