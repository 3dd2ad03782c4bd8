from services.notifier.app import create_app
from services.notifier.settings import NotifierSettings
from shared.secrets import load_settings
from shared.serve import serve

settings = load_settings(NotifierSettings)
serve(create_app(settings), settings)
