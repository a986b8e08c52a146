;; A task sequence across chunks: parse (json), then checksum (crc32), then compress (lz).
;; Calls the other chunks through imports; the image records them as providers.
(module
  (import "atoll" "print" (func $print (param i32 i32)))
  (import "json" "json_generate_and_count" (func $parse (param i32) (result i32)))
  (import "crc32" "crc32_bench" (func $checksum (param i32) (result i32)))
  (import "lz" "lz_roundtrip" (func $compress (param i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "pipeline: parse, checksum, compress")

  ;; Runs the three steps for size n and combines their results:
  ;; (tokens << 40) ^ (compressed size << 32) ^ (crc32 as u32).
  (func (export "pipeline") (param $n i32) (result i64)
    (local $tokens i32) (local $crc i32) (local $packed i32)
    (call $print (i32.const 0) (i32.const 35))
    (local.set $tokens (call $parse (local.get $n)))
    (local.set $crc (call $checksum (local.get $n)))
    (local.set $packed (call $compress (local.get $n)))
    (i64.xor
      (i64.xor
        (i64.shl (i64.extend_i32_s (local.get $tokens)) (i64.const 40))
        (i64.shl (i64.extend_i32_s (local.get $packed)) (i64.const 32)))
      (i64.extend_i32_u (local.get $crc))))

  ;; The three results separately (multi-value).
  (func (export "steps") (param $n i32) (result i32 i32 i32)
    (call $parse (local.get $n))
    (call $checksum (local.get $n))
    (call $compress (local.get $n)))
)
