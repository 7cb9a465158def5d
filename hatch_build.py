"""Build hook: compile the message catalogues (reportgen/locale/*/LC_MESSAGES/*.po) into the .mo files gettext
reads, when the wheel is built (`pip install .`), so an installed reportgen never compiles at run time."""

from __future__ import annotations

from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CatalogueBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version, build_data):
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po

        for po in sorted(Path(self.root, "reportgen", "locale").glob("*/LC_MESSAGES/*.po")):
            with open(po, "rb") as fh:
                catalog = read_po(fh)
            with open(po.with_suffix(".mo"), "wb") as fh:
                write_mo(fh, catalog, use_fuzzy=False)
            build_data["artifacts"].append(str(po.with_suffix(".mo").relative_to(self.root)))
