// PLACEHOLDER: replaced by the owner of this command.
#[derive(clap::Args)]
pub struct GenerateArgs {}

pub fn run(_args: GenerateArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
