;; One export per WebAssembly trap kind, with non-trapping neighbours: each trap must end its
;; task with a clear error, and the next task must run normally.
(module
  (type $v_i (func (result i32)))
  (type $i_i (func (param i32) (result i32)))
  (memory 1)
  (table 2 funcref)
  (elem (i32.const 0) $answer)
  (func $answer (type $v_i) (i32.const 42))

  (func (export "unreachable") (result i32)
    unreachable)

  (func (export "div_zero") (param $b i32) (result i32)
    (i32.div_u (i32.const 1) (local.get $b)))

  ;; INT_MIN / -1 does not fit in an i32.
  (func (export "overflow") (param $b i32) (result i32)
    (i32.div_s (i32.const 0x80000000) (local.get $b)))

  (func (export "convert") (param $x f64) (result i32)
    (i32.trunc_f64_s (local.get $x)))

  (func (export "load") (param $addr i32) (result i32)
    (i32.load (local.get $addr)))

  (func (export "store") (param $addr i32) (result i32)
    (i32.store (local.get $addr) (i32.const 7))
    (i32.load (local.get $addr)))

  ;; Entry 0 holds $answer, entry 1 is null, entries from 2 are outside the table.
  (func (export "call") (param $i i32) (result i32)
    (call_indirect (type $v_i) (local.get $i)))

  (func (export "call_wrong_type") (result i32)
    (call_indirect (type $i_i) (i32.const 7) (i32.const 0)))

  (func $deep (export "recurse") (param $n i32) (result i32)
    (i32.add (i32.const 1) (call $deep (i32.add (local.get $n) (i32.const 1)))))
)
