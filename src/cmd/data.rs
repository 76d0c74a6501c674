// PLACEHOLDER: replaced by the owner of this command.
#[derive(clap::Subcommand)]
pub enum DataCommand {
    /// Describe a Well-layout dataset.
    Info { path: std::path::PathBuf },
}

pub fn run(_command: DataCommand) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
