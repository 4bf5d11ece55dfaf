"""What the tests share that is not a fixture: settings, databases, apps, factories, fakes, local servers.

conftest.py files hold fixtures only; they build them from here.
"""
