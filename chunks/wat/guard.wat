;; Loads and stores at the edges of linear memory, for guard-page mode (docs/guard-pages.md):
;; one page that may grow to four, accesses with small and large static offsets, growth inside
;; a task, and a word-summing loop (a memory-bound workload for `guard bench`).
(module
  (memory 1 4)

  (func (export "load") (param $a i32) (result i32)
    (i32.load (local.get $a)))
  (func (export "load8") (param $a i32) (result i32)
    (i32.load8_u (local.get $a)))
  (func (export "load64") (param $a i32) (result i64)
    (i64.load (local.get $a)))
  ;; A static offset of one page.
  (func (export "load_page") (param $a i32) (result i32)
    (i32.load offset=65536 (local.get $a)))
  ;; The largest static offset: any index but a tiny one reaches past 4 GiB.
  (func (export "load_far") (param $a i32) (result i32)
    (i32.load8_u offset=0xffffffff (local.get $a)))
  ;; A static offset just above 2 GiB (the form that does not fit a displacement).
  (func (export "load_high") (param $a i32) (result i32)
    (i32.load offset=0x80000000 (local.get $a)))

  (func (export "store") (param $a i32) (param $v i32) (result i32)
    (i32.store (local.get $a) (local.get $v))
    (i32.load (local.get $a)))
  (func (export "store8") (param $a i32) (result i32)
    (i32.store8 (local.get $a) (i32.const 0x5a))
    (i32.load8_u (local.get $a)))
  (func (export "store64") (param $a i32) (result i64)
    (i64.store (local.get $a) (i64.const 0x0102030405060708))
    (i64.load (local.get $a)))
  (func (export "store_high") (param $a i32) (result i32)
    (i32.store offset=0x7fffff00 (local.get $a) (i32.const 9))
    (i32.const 1))

  ;; Grows by $n pages, then loads at $a (the new size decides whether it traps).
  (func (export "grow_load") (param $n i32) (param $a i32) (result i32)
    (drop (memory.grow (local.get $n)))
    (i32.load (local.get $a)))
  ;; Grows by $n pages, then stores at $a and reads it back.
  (func (export "grow_store") (param $n i32) (param $a i32) (result i32)
    (drop (memory.grow (local.get $n)))
    (i32.store (local.get $a) (i32.const 77))
    (i32.add (i32.load (local.get $a)) (i32.mul (memory.size) (i32.const 1000))))

  ;; Fills the first $words words with i * 3 and sums them $rounds times.
  (func (export "sum") (param $words i32) (param $rounds i32) (result i32)
    (local $i i32) (local $s i32)
    (block $done
      (loop $fill
        (br_if $done (i32.ge_u (local.get $i) (local.get $words)))
        (i32.store (i32.shl (local.get $i) (i32.const 2)) (i32.mul (local.get $i) (i32.const 3)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $fill)))
    (block $end
      (loop $round
        (br_if $end (i32.eqz (local.get $rounds)))
        (local.set $i (i32.const 0))
        (block $next
          (loop $add
            (br_if $next (i32.ge_u (local.get $i) (local.get $words)))
            (local.set $s (i32.add (local.get $s)
              (i32.load (i32.shl (local.get $i) (i32.const 2)))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $add)))
        (local.set $rounds (i32.sub (local.get $rounds) (i32.const 1)))
        (br $round)))
    (local.get $s))
)
