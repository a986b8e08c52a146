//! atoll: a bare-metal x86-64 unikernel that assembles WebAssembly chunks into machine code.
#![no_std]
#![no_main]

mod arch;

use bootloader_api::config::{BootloaderConfig, Mapping};
use bootloader_api::{BootInfo, entry_point};

static BOOT_CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    config.mappings.physical_memory = Some(Mapping::Dynamic);
    config.kernel_stack_size = 256 * 1024;
    config
};

entry_point!(kmain, config = &BOOT_CONFIG);

fn kmain(_boot_info: &'static mut BootInfo) -> ! {
    // SAFETY: COM1 is the console UART and nothing else drives it.
    let mut uart = unsafe { arch::serial::Uart16550::new(arch::serial::COM1_BASE) };
    uart.init();
    for b in b"atoll: booted\r\natoll> " {
        uart.send(*b);
    }
    let mut line = [0u8; 128];
    let mut len = 0;
    loop {
        if let Some(b) = uart.try_receive() {
            if b == b'\r' || b == b'\n' {
                uart.send(b'\r');
                uart.send(b'\n');
                if &line[..len] == b"poweroff" {
                    let p = arch::port::Port::<u16>::new(0x604);
                    // SAFETY: temporary QEMU power-off port.
                    unsafe { p.write(0x2000) };
                }
                len = 0;
                for b in b"atoll> " {
                    uart.send(*b);
                }
            } else if len < line.len() {
                line[len] = b;
                len += 1;
                uart.send(b);
            }
        }
    }
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {
        core::hint::spin_loop();
    }
}
