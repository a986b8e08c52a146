//! A NUMA machine for QEMU: memory and cores split evenly over N nodes, one socket per node.
//!
//! QEMU 7.2 on q35 takes node memory only from memory backends (`-numa node,mem=` is refused
//! for new machine types), so each node gets `-object memory-backend-ram,id=numa-memK,size=S`
//! and `-numa node,nodeid=K,memdev=numa-memK`; the backends' sizes must add up to `-m`. The
//! topology is made explicit (`-smp N,sockets=NODES,cores=N/NODES,threads=1`) so that node K
//! is socket K: `-numa cpu,node-id=K,socket-id=K`. With more than one node, every pair of
//! nodes gets `-numa dist,src=I,dst=J,val=20` (QEMU mirrors it; local is 10), as a two-socket
//! PC reports. QEMU then builds the SRAT and the SLIT that the kernel reads.

use std::fmt;

/// The SLIT distance between two different nodes (10 is local).
pub const REMOTE_DISTANCE: u8 = 20;
/// The SLIT distance of a node to itself.
pub const LOCAL_DISTANCE: u8 = 10;

/// Node memory must be a whole number of these, so node-local 2 MiB frames exist.
pub const NODE_MEM_ALIGN_BYTES: u64 = 2 * 1024 * 1024;

/// Why a machine cannot be split into NUMA nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumaError {
    /// Zero nodes.
    NoNodes,
    /// The cores do not split evenly.
    Cores {
        /// Cores.
        smp: u32,
        /// Nodes asked for.
        nodes: u32,
    },
    /// The memory size is not in the `NUMBER[K|M|G|T]` form this split understands.
    MemSyntax(String),
    /// The memory does not split into equal whole-2 MiB parts.
    Memory {
        /// Bytes of guest memory.
        bytes: u64,
        /// Nodes asked for.
        nodes: u32,
    },
}

impl fmt::Display for NumaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NumaError::NoNodes => write!(f, "--numa needs at least 1 node"),
            NumaError::Cores { smp, nodes } => write!(
                f,
                "--numa {nodes}: {smp} cores do not split evenly over {nodes} nodes \
                 (use --smp with a multiple of {nodes})"
            ),
            NumaError::MemSyntax(m) => write!(
                f,
                "--numa: cannot split memory size `{m}` (use a whole number with K, M, G or T)"
            ),
            NumaError::Memory { bytes, nodes } => write!(
                f,
                "--numa {nodes}: {bytes} bytes of memory do not split into {nodes} equal parts \
                 of whole 2 MiB"
            ),
        }
    }
}

impl std::error::Error for NumaError {}

/// Parses QEMU's `-m` syntax as far as this split needs: a whole number with an optional
/// suffix B, K, M, G or T (either case; no suffix means MiB, as QEMU reads it).
pub fn parse_mem_bytes(mem: &str) -> Option<u64> {
    let mem = mem.trim();
    let split = mem.find(|c: char| !c.is_ascii_digit()).unwrap_or(mem.len());
    let (digits, suffix) = mem.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let shift = match suffix.to_ascii_uppercase().as_str() {
        "B" => 0,
        "K" => 10,
        "" | "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return None,
    };
    n.checked_mul(1 << shift)
}

/// An even split of cores and memory over nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumaLayout {
    /// Number of nodes.
    pub nodes: u32,
    /// Cores per node (node K has cores K*c .. (K+1)*c, which are socket K).
    pub cores_per_node: u32,
    /// Bytes of memory per node.
    pub node_mem_bytes: u64,
}

impl NumaLayout {
    /// Splits `smp` cores and `mem` (QEMU syntax) over `nodes`, or says why it cannot.
    pub fn new(nodes: u32, smp: u32, mem: &str) -> Result<Self, NumaError> {
        if nodes == 0 {
            return Err(NumaError::NoNodes);
        }
        if smp == 0 || !smp.is_multiple_of(nodes) {
            return Err(NumaError::Cores { smp, nodes });
        }
        let bytes = parse_mem_bytes(mem).ok_or_else(|| NumaError::MemSyntax(mem.into()))?;
        let part = bytes / u64::from(nodes);
        if !bytes.is_multiple_of(u64::from(nodes))
            || part == 0
            || !part.is_multiple_of(NODE_MEM_ALIGN_BYTES)
        {
            return Err(NumaError::Memory { bytes, nodes });
        }
        Ok(Self {
            nodes,
            cores_per_node: smp / nodes,
            node_mem_bytes: part,
        })
    }

    /// The `-smp` value: the core count with sockets = nodes.
    pub fn smp_arg(&self) -> String {
        format!(
            "{},sockets={},cores={},threads=1",
            self.nodes * self.cores_per_node,
            self.nodes,
            self.cores_per_node
        )
    }

    /// The QEMU arguments that define the nodes (after `-m` and `-smp`).
    pub fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for node in 0..self.nodes {
            args.push("-object".into());
            args.push(format!(
                "memory-backend-ram,id=numa-mem{node},size={}",
                self.node_mem_bytes
            ));
            args.push("-numa".into());
            args.push(format!("node,nodeid={node},memdev=numa-mem{node}"));
            args.push("-numa".into());
            args.push(format!("cpu,node-id={node},socket-id={node}"));
        }
        for src in 0..self.nodes {
            for dst in src + 1..self.nodes {
                args.push("-numa".into());
                args.push(format!("dist,src={src},dst={dst},val={REMOTE_DISTANCE}"));
            }
        }
        args
    }

    /// The SLIT distance QEMU reports from node `from` to node `to`.
    pub fn distance(&self, from: u32, to: u32) -> u8 {
        if from == to {
            LOCAL_DISTANCE
        } else {
            REMOTE_DISTANCE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_mem_bytes("1G"), Some(1 << 30));
        assert_eq!(parse_mem_bytes("512m"), Some(512 << 20));
        assert_eq!(parse_mem_bytes("2048"), Some(2048 << 20));
        assert_eq!(parse_mem_bytes("4096K"), Some(4 << 20));
        assert_eq!(parse_mem_bytes("1.5G"), None);
        assert_eq!(parse_mem_bytes("G"), None);
        assert_eq!(parse_mem_bytes("1X"), None);
        assert_eq!(parse_mem_bytes("99999999999T"), None);
    }

    #[test]
    fn two_nodes_four_cores() {
        let l = NumaLayout::new(2, 4, "1G").unwrap();
        assert_eq!(l.node_mem_bytes, 512 << 20);
        assert_eq!(l.smp_arg(), "4,sockets=2,cores=2,threads=1");
        let a = l.args().join(" ");
        assert_eq!(
            a,
            "-object memory-backend-ram,id=numa-mem0,size=536870912 \
             -numa node,nodeid=0,memdev=numa-mem0 -numa cpu,node-id=0,socket-id=0 \
             -object memory-backend-ram,id=numa-mem1,size=536870912 \
             -numa node,nodeid=1,memdev=numa-mem1 -numa cpu,node-id=1,socket-id=1 \
             -numa dist,src=0,dst=1,val=20"
        );
        assert_eq!((l.distance(1, 1), l.distance(1, 0)), (10, 20));
        let three = NumaLayout::new(3, 3, "6M").unwrap().args().join(" ");
        assert!(three.ends_with(
            "dist,src=0,dst=1,val=20 -numa dist,src=0,dst=2,val=20 -numa dist,src=1,dst=2,val=20"
        ));
        assert!(
            !NumaLayout::new(1, 2, "1G")
                .unwrap()
                .args()
                .join(" ")
                .contains("dist")
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(NumaLayout::new(0, 2, "1G"), Err(NumaError::NoNodes));
        assert_eq!(
            NumaLayout::new(3, 4, "1G"),
            Err(NumaError::Cores { smp: 4, nodes: 3 })
        );
        assert!(matches!(
            NumaLayout::new(2, 2, "1.5G"),
            Err(NumaError::MemSyntax(_))
        ));
        // 1 GiB over 3 nodes is not whole; 6 MiB over 2 nodes is 3 MiB, not whole 2 MiB.
        assert!(matches!(
            NumaLayout::new(3, 3, "1G"),
            Err(NumaError::Memory { .. })
        ));
        assert!(matches!(
            NumaLayout::new(2, 2, "6M"),
            Err(NumaError::Memory { .. })
        ));
        assert!(NumaLayout::new(1, 1, "1G").is_ok());
    }
}
