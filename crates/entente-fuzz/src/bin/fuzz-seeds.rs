//! Writes each fuzz target's seeds into `<DIR>/<target>/` (the corpora `scripts/fuzz.sh`
//! starts libFuzzer from). Seeds are named by their SHA-256, as libFuzzer names its own.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: fuzz-seeds DIR");
        return ExitCode::from(2);
    };
    for t in entente_fuzz::TARGETS {
        let written = entente_fuzz::seeds(t.name).and_then(|seeds| {
            let to = dir.join(t.name);
            std::fs::create_dir_all(&to).map_err(|e| format!("{}: {e}", to.display()))?;
            for s in &seeds {
                let name = entente_fuzz::seed_name(s);
                std::fs::write(to.join(name), s).map_err(|e| format!("{}: {e}", to.display()))?;
            }
            Ok(seeds.len())
        });
        match written {
            Ok(n) => println!("{:<18} {n} seeds", t.name),
            Err(e) => {
                eprintln!("error: {}: {e}", t.name);
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
