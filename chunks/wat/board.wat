;; A shared board: a memory, a table and a global that other chunks import (dynamic linking
;; with shared state). `writer` fills the memory and installs its functions in the table,
;; `reader` reads both; the kernel keeps one instance of each of the three (a linked group),
;; so what one task writes the next task reads, on any core.
(module
  (memory (export "mem") 1 16)
  (table (export "slots") 8 funcref)
  (global (export "writes") (mut i64) (i64.const 0))
  (global (export "version") i32 (i32.const 2))

  ;; Tasks that changed the board so far.
  (func (export "writes_so_far") (result i64)
    (global.get 0))

  ;; Size of the shared memory in pages.
  (func (export "pages") (result i32)
    (memory.size))

  ;; Whether slot i holds a function (1) or is empty (0); out of range traps.
  (func (export "installed") (param $i i32) (result i32)
    (i32.eqz (ref.is_null (table.get (local.get $i)))))
)
