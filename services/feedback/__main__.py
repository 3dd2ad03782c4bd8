from services.feedback.app import create_app
from services.feedback.settings import FeedbackSettings
from shared.serve import serve

settings = FeedbackSettings()
serve(create_app(settings), settings)
