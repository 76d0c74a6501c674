// PLACEHOLDER: replaced by the owner of this command.
#[derive(clap::Args)]
pub struct BenchSolversArgs {}

pub fn run(_args: BenchSolversArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
