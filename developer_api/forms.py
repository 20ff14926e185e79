"""The developer page's forms: shapes only; the rules live in the services, whose errors land back
on the named field."""

from django import forms

from broker.errors import BrokerError
from developer_api.models import ApiKey


class _BrokerForm(forms.Form):
    def add_broker_error(self, exc: BrokerError) -> None:
        self.add_error(exc.field if exc.field in self.fields else None, exc.message)


class AppForm(_BrokerForm):
    name = forms.CharField(label="App name", max_length=64, help_text="Users see it as the name of the app's account.")
    description = forms.CharField(label="Description", max_length=500, required=False,
                                  help_text="What the app does, in a sentence.")


class KeyForm(_BrokerForm):
    name = forms.CharField(label="Key name", max_length=64, required=False, help_text="Where you use it, say.")
    scopes = forms.MultipleChoiceField(label="Scopes", choices=[(s, s) for s in ApiKey.SCOPES],
                                       widget=forms.CheckboxSelectMultiple, initial=["messages:send", "messages:read"])
    expires_in_days = forms.IntegerField(label="Expires after (days)", min_value=1, max_value=3650, required=False,
                                         help_text="Empty: never.")


class CommercialForm(_BrokerForm):
    use_description = forms.CharField(label="What is the app for?", max_length=2000, widget=forms.Textarea)


class WebhookForm(_BrokerForm):
    url = forms.CharField(label="Callback URL", max_length=500)
    verify_token = forms.CharField(label="Verify token", max_length=200,
                                   help_text="Your callback gets it as hub.verify_token in the handshake.")
