"""Print the dbmate URL derived from the settings (used by `make migrate`)."""

from app.core.config import get_settings

if __name__ == "__main__":
    print(get_settings().dbmate_url)
