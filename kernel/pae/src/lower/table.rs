//! Reference values and tables: `ref.null`, `ref.is_null`, `ref.func`, `table.get/set/size`
//! inline, `table.grow/fill/copy/init` and `elem.drop` through runtime helpers.
//!
//! A table is reached through `VmContext::tables[t]` (a [`TableDef`](crate::vmctx::TableDef)
//! that instances importing the table share); an index is checked against its `len` before
//! every inline access.

use iced_x86::{Code, Instruction};
use wasmparser::Operator;

use super::{Func, Loc};
use crate::emit::{Cond, R64, mem, mem_scaled, reg};
use crate::module::Ty;
use crate::vmctx::{TrapCode, off};
use crate::{CompileError, Libcall};

impl Func<'_, '_> {
    pub(super) fn table(&mut self, op: &Operator<'_>) -> Result<bool, CompileError> {
        match *op {
            Operator::RefNull { hty } => {
                let ty = if hty == wasmparser::HeapType::EXTERN {
                    Ty::ExternRef
                } else {
                    Ty::FuncRef
                };
                self.push_const(ty, 0)?;
            }
            Operator::RefIsNull => {
                let v = self.pop();
                if let (Loc::Const(k), true) = (v.loc, self.cx.opts.const_fold) {
                    return self.push_const(Ty::I32, u64::from(k == 0)).map(|()| true);
                }
                let r = self.gpr_of(v)?;
                let e = &mut self.cx.e;
                e.ins(Instruction::with2(
                    Code::Test_rm64_r64,
                    R64[r as usize],
                    R64[r as usize],
                ))?;
                e.setcc(Cond::E, r)?;
                self.push(Ty::I32, Loc::Gpr(r));
            }
            Operator::RefFunc { function_index } => {
                let r = self.alloc_gpr()?;
                let e = &mut self.cx.e;
                e.load(r, true, mem(reg::VMCTX, off::FUNC_REFS))?;
                e.ins(Instruction::with2(
                    Code::Lea_r64_m,
                    R64[r as usize],
                    mem(r, off::FUNC_REF_BYTES * function_index as i32),
                ))?;
                self.push(Ty::FuncRef, Loc::Gpr(r));
            }
            Operator::TableGet { table } => {
                let ty = self.cx.m.tables[table as usize].ty;
                let i = self.pop();
                let r = self.gpr_of(i)?;
                self.table_slot(table, r)?;
                self.cx.e.load(r, true, mem_scaled(reg::RAX, r, 8, 0))?;
                self.push(ty, Loc::Gpr(r));
            }
            Operator::TableSet { table } => {
                let v = self.pop();
                let i = self.pop();
                let rv = self.gpr_of(v)?;
                let ri = self.gpr_of(i)?;
                self.table_slot(table, ri)?;
                self.cx.e.store(mem_scaled(reg::RAX, ri, 8, 0), rv, true)?;
                self.free_gpr(rv);
                self.free_gpr(ri);
            }
            Operator::TableSize { table } => {
                let r = self.alloc_gpr()?;
                let e = &mut self.cx.e;
                e.load(r, true, mem(reg::VMCTX, off::TABLES))?;
                e.load(r, true, mem(r, 8 * table as i32))?;
                e.load(r, false, mem(r, off::TABLE_DEF_LEN))?;
                self.push(Ty::I32, Loc::Gpr(r));
            }
            Operator::TableGrow { table } => {
                self.push_const(Ty::I32, u64::from(table))?;
                self.libcall(Libcall::TableGrow, 3, Some(Ty::I32), false)?;
            }
            Operator::TableFill { table } => {
                self.push_const(Ty::I32, u64::from(table))?;
                self.libcall(Libcall::TableFill, 4, None, true)?;
            }
            Operator::TableCopy {
                dst_table,
                src_table,
            } => {
                let tables = u64::from(dst_table) << 32 | u64::from(src_table);
                self.push_const(Ty::I64, tables)?;
                self.libcall(Libcall::TableCopy, 4, None, true)?;
            }
            Operator::TableInit { elem_index, table } => {
                let which = u64::from(table) << 32 | u64::from(elem_index);
                self.push_const(Ty::I64, which)?;
                self.libcall(Libcall::TableInit, 4, None, true)?;
            }
            Operator::ElemDrop { elem_index } => {
                self.push_const(Ty::I32, u64::from(elem_index))?;
                self.libcall(Libcall::ElemDrop, 1, None, false)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Zero-extends the i32 index in `r`, traps unless it is below table `table`'s length and
    /// leaves the table's entries' base in `rax`.
    fn table_slot(&mut self, table: u32, r: u8) -> Result<(), CompileError> {
        let e = &mut self.cx.e;
        e.mov_rr(r, r, false)?;
        e.load(reg::RAX, true, mem(reg::VMCTX, off::TABLES))?;
        e.load(reg::RAX, true, mem(reg::RAX, 8 * table as i32))?;
        e.ins(Instruction::with2(
            Code::Cmp_r64_rm64,
            R64[r as usize],
            mem(reg::RAX, off::TABLE_DEF_LEN),
        ))?;
        self.trap_if(Cond::Ae, TrapCode::TableAccessOutOfBounds)?;
        self.cx
            .e
            .load(reg::RAX, true, mem(reg::RAX, off::TABLE_DEF_BASE))
    }
}
