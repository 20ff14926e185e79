"""The browser UI's forms. They check shapes only; the rules (phone numbers, passwords, uniqueness)
live in the broker services the pages call, whose errors land back on the named field."""

from django import forms

from broker.errors import BrokerError

PHONE_ATTRS = {"autocomplete": "tel", "inputmode": "tel", "placeholder": "+12025550123", "autofocus": True}


class _BrokerForm(forms.Form):
    def add_broker_error(self, exc: BrokerError) -> None:
        field = exc.field if exc.field in self.fields else None
        self.add_error(field, exc.message)


class LoginForm(_BrokerForm):
    phone_number = forms.CharField(label="Phone number", max_length=32, widget=forms.TextInput(attrs=PHONE_ATTRS))
    password = forms.CharField(
        label="Password", max_length=128, strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class RegisterForm(_BrokerForm):
    phone_number = forms.CharField(
        label="Phone number", max_length=32, widget=forms.TextInput(attrs=PHONE_ATTRS),
        help_text="International form, with the country code.",
    )
    display_name = forms.CharField(
        label="Display name", max_length=64, widget=forms.TextInput(attrs={"autocomplete": "name"}),
        help_text="What other people see.",
    )
    password = forms.CharField(
        label="Password", max_length=128, strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 8 characters, not all digits.",
    )
