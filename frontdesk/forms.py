"""The browser UI's forms. They check shapes only; the rules (phone numbers, passwords, uniqueness)
live in the broker services the pages call, whose errors land back on the named field."""

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from broker.errors import BrokerError, RateLimited
from broker.services import accounts

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


class AdminLoginForm(AdminAuthenticationForm):
    """The admin's login form (admin.site.login_form), with the password checked as every other
    login checks it (accounts.check_password): throttled per client address and per phone number's
    wrong passwords, each wrong one counted. Django's own form checked without limit."""

    def clean(self):
        phone_number, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
        if phone_number is not None and password:
            try:
                self.user_cache = accounts.check_password(
                    phone_number=phone_number, password=password, client_ip=self.request.META.get("REMOTE_ADDR"),
                )
            except RateLimited as exc:
                raise ValidationError(exc.message, code="rate_limited") from exc
            except BrokerError as exc:  # a wrong password, or not a phone number
                raise self.get_invalid_login_error() from exc
            self.confirm_login_allowed(self.user_cache)  # staff only
        return self.cleaned_data
