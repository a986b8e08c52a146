;; Naive substring search over a built-in text in linear memory.
(module
  (memory 1)
  ;; The haystack: 0..len.
  (data (i32.const 0) "the atoll kernel loads a chunk image; each chunk is a wasm module. the predictor guesses the next chunk, and the island mover relocates hot code between cores while the world is stopped.")
  (global $text_len i32 (i32.const 186))
  ;; Needles: a table of (offset, length) pairs at 1024, strings at 1100.
  (data (i32.const 1024) "\4c\04\00\00\03\00\00\00" "\4f\04\00\00\05\00\00\00" "\54\04\00\00\05\00\00\00" "\59\04\00\00\04\00\00\00" "\5d\04\00\00\02\00\00\00")
  (data (i32.const 1100) "the" "chunk" "atoll" "wasm" "ch")

  ;; Occurrences of haystack[0..hlen] of memory[needle..needle+nlen] (overlapping matches count).
  (func $count (param $needle i32) (param $nlen i32) (result i32)
    (local $i i32) (local $j i32) (local $found i32)
    (if (i32.le_s (local.get $nlen) (i32.const 0)) (then (return (i32.const 0))))
    (block $end
      (loop $outer
        (br_if $end (i32.gt_s (i32.add (local.get $i) (local.get $nlen)) (global.get $text_len)))
        (local.set $j (i32.const 0))
        (block $mismatch
          (loop $inner
            (br_if $mismatch
              (i32.ne
                (i32.load8_u (i32.add (local.get $i) (local.get $j)))
                (i32.load8_u (i32.add (local.get $needle) (local.get $j)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br_if $inner (i32.lt_s (local.get $j) (local.get $nlen))))
          (local.set $found (i32.add (local.get $found) (i32.const 1))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $outer)))
    (local.get $found))

  ;; Occurrences of built-in needle w (0 "the", 1 "chunk", 2 "atoll", 3 "wasm", 4 "ch");
  ;; -1 for an unknown w.
  (func (export "count_word") (param $w i32) (result i32)
    (local $entry i32)
    (if (i32.ge_u (local.get $w) (i32.const 5)) (then (return (i32.const -1))))
    (local.set $entry (i32.add (i32.const 1024) (i32.shl (local.get $w) (i32.const 3))))
    (call $count (i32.load (local.get $entry)) (i32.load offset=4 (local.get $entry))))

  ;; Occurrences of the byte c in the text.
  (func (export "count_byte") (param $c i32) (result i32)
    (local $i i32) (local $found i32)
    (loop $next
      (if (i32.eq (i32.load8_u (local.get $i)) (i32.and (local.get $c) (i32.const 255)))
        (then (local.set $found (i32.add (local.get $found) (i32.const 1)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $next (i32.lt_s (local.get $i) (global.get $text_len))))
    (local.get $found))
)
