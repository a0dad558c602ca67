use crate::app::Application;
use crate::config::Config;

pub fn run(config: Config) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        for w in config.warnings() {
            tracing::warn!("{w}");
        }
        let issuer = config.issuer.clone();
        let listen = config.listen.clone();
        let app = Application::build(config).await?;
        tracing::info!(%issuer, %listen, "latchkey listening");
        app.run_until_stopped().await?;
        Ok(())
    })
}
