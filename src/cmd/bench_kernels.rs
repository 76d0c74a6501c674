// PLACEHOLDER: replaced by the owner of this command.
#[derive(clap::Args)]
pub struct BenchKernelsArgs {}

pub fn run(_args: BenchKernelsArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
