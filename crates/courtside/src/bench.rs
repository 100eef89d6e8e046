//! `courtside bench`: placeholder while the load tool is written.

use clap::Args;

#[derive(Args)]
pub struct BenchArgs {}

pub async fn run(_args: BenchArgs) -> Result<(), String> {
    Err("bench is not built yet".into())
}
