from services.feedback.app import create_app
from services.feedback.settings import FeedbackSettings
from shared.secrets import load_settings
from shared.serve import serve

settings = load_settings(FeedbackSettings)
serve(create_app(settings), settings)
