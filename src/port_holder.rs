//! Which program holds a TCP port, for the "address in use" message: the admin should
//! read "Asterisk (pid 812) listens on 8088", not look it up with ss.

/// Socket inodes listening on TCP `port`, from `/proc/net/tcp` or `/proc/net/tcp6` text.
pub fn listening_inodes(proc_net_tcp: &str, port: u16) -> Vec<u64> {
    const LISTEN: &str = "0A";
    proc_net_tcp
        .lines()
        .skip(1)
        .filter_map(|line| {
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields.get(1)?.rsplit(':').next()?;
            let inode = fields.get(9)?.parse().ok()?;
            (u16::from_str_radix(local_port, 16).ok()? == port && *fields.get(3)? == LISTEN).then_some(inode)
        })
        .collect()
}

/// "name (pid N)" of a process holding a socket listening on TCP `port`, when this
/// process may see it (root sees all).
pub fn holder_of_tcp_port(port: u16) -> Option<String> {
    let inodes: Vec<u64> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|text| listening_inodes(&text, port))
        .collect();
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else { continue };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| wanted.iter().any(|w| target.as_os_str() == w.as_str()))
        });
        if holds {
            let name = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            return Some(format!("{} (pid {pid})", name.trim()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_listening_socket_of_a_port_and_nothing_else() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
            0: 0100007F:1F98 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0\n   \
            1: 0100007F:1F98 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 20 4 30 10 -1\n   \
            2: 00000000:13C4 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 100 0 0 10 0\n";
        // 0x1F98 = 8088: the listener, not the connection to it.
        assert_eq!(super::listening_inodes(text, 8088), vec![4242]);
        assert_eq!(super::listening_inodes(text, 5060), vec![4444], "0x13C4 on any address");
        assert_eq!(super::listening_inodes(text, 5061), Vec::<u64>::new());
        assert_eq!(super::listening_inodes("garbage\nmore garbage", 8088), Vec::<u64>::new());
    }
}
