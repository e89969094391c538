//! The dialplan hook that refuses a locked extension's outbound calls in Asterisk
//! itself, so a lock holds even while sipwarden cannot act (docs/ASTERISK.md §4).
//! FreePBX runs `[macro-dialout-trunk-predial-hook]` before every call out through a
//! trunk and leaves it empty for installations to fill in `extensions_custom.conf`
//! (FreePBX 16 calls it as a Macro, 17 as a Gosub). sipwarden writes it there in its
//! managed block, checking the AstDB key the watch sets when it locks an extension.

/// The file FreePBX includes for the installation's own dialplan.
pub const FILE: &str = "extensions_custom.conf";
pub const CONTEXT: &str = "macro-dialout-trunk-predial-hook";

/// The hook, for the AstDB family `lock_family` (`sipwarden-locked/<extension>`).
pub fn render(lock_family: &str) -> String {
    format!(
        "[{CONTEXT}]\n\
         ; A locked extension (toll fraud, a guessed password) calls out no more until it\n\
         ; is unlocked in sipwarden. Runs as a Macro (FreePBX 16) or a Gosub (17).\n\
         exten => s,1,GotoIf($[${{DB_EXISTS({lock_family}/${{AMPUSER}})}}]?locked)\n\
         exten => s,n,ExecIf($[0${{MACRO_DEPTH}} > 0]?MacroExit():Return())\n\
         exten => s,n(locked),Log(WARNING,sipwarden: extension ${{AMPUSER}} is locked; call refused)\n\
         exten => s,n,Hangup(21)\n"
    )
}

/// Whether `text` (the file without sipwarden's block) defines the hook itself: then
/// the admin's own hook stays and sipwarden writes none (two would clash).
pub fn defined_by_admin(text_outside_block: &str) -> bool {
    let header = format!("[{CONTEXT}]");
    text_outside_block.lines().any(|l| l.trim_start().starts_with(&header))
}

/// Whether `dialplan show <CONTEXT>` shows sipwarden's check loaded.
pub fn is_loaded(dialplan_show: &str, lock_family: &str) -> bool {
    dialplan_show.contains(&format!("DB_EXISTS({lock_family}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hook_checks_the_lock_and_leaves_either_way_it_was_called() {
        let hook = render("sipwarden-locked");
        assert!(hook.starts_with("[macro-dialout-trunk-predial-hook]\n"));
        assert!(hook.contains("exten => s,1,GotoIf($[${DB_EXISTS(sipwarden-locked/${AMPUSER})}]?locked)\n"));
        // An unlocked extension's call goes on: back to the caller, Macro or Gosub.
        assert!(hook.contains("exten => s,n,ExecIf($[0${MACRO_DEPTH} > 0]?MacroExit():Return())\n"));
        assert!(hook.ends_with("exten => s,n,Hangup(21)\n"));
        // Every line is a comment, the header or a step of `s`: nothing else is touched.
        assert!(hook.lines().skip(1).all(|l| l.starts_with(';') || l.starts_with("exten => s,")));
    }

    #[test]
    fn an_admins_own_hook_is_found_and_a_comment_is_not() {
        assert!(defined_by_admin("[general]\n\n[macro-dialout-trunk-predial-hook]\nexten => s,1,NoOp()\n"));
        assert!(!defined_by_admin("; [macro-dialout-trunk-predial-hook] was here\n[from-internal-custom]\n"));
        assert!(is_loaded(
            "[ Context 'macro-dialout-trunk-predial-hook' created by 'pbx_config' ]\n  's' => 1. GotoIf($[${DB_EXISTS(sipwarden-locked/${AMPUSER})}]?locked)",
            "sipwarden-locked"
        ));
    }
}
