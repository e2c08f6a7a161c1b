"""The base of every adapter's recipe options: strict keys, so a typo is an error naming the field."""

from pydantic import BaseModel, ConfigDict


class AdapterOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
