from services.sla_monitor.app import create_app
from services.sla_monitor.settings import SlaSettings
from shared.serve import serve

settings = SlaSettings()
serve(create_app(settings), settings)
