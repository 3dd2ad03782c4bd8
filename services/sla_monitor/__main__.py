from services.sla_monitor.app import create_app
from services.sla_monitor.settings import SlaSettings
from shared.secrets import load_settings
from shared.serve import serve

settings = load_settings(SlaSettings)
serve(create_app(settings), settings)
