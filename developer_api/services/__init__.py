"""The developer API's services: plain functions with keyword-only arguments, the one place where
its rules live. Views, the admin, the page and the task worker all call these."""
