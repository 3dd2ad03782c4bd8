from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared.secrets import load_settings
from shared.serve import serve

settings = load_settings(IntakeSettings)
serve(create_app(settings), settings)
