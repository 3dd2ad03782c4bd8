from services.mail_gateway.app import create_app
from services.mail_gateway.settings import MailGatewaySettings
from shared.secrets import load_settings
from shared.serve import serve

settings = load_settings(MailGatewaySettings)
serve(create_app(settings), settings)
