from services.notifier.app import create_app
from services.notifier.settings import NotifierSettings
from shared.serve import serve

settings = NotifierSettings()
serve(create_app(settings), settings)
