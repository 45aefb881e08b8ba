"""The window's commands as a table (key, text, shortcut, icon, slot, menu, tool bar), and the QActions,
menus and tool bars built from it.

A row's `menu` and `toolbar` read "NAME:GROUP": rows appear in table order, and a separator comes
between groups. A row's `slot` is a dotted attribute path on the window ("session.save"), resolved when
the action is triggered, so the table names parts the window builds after its first frame.
"""

from __future__ import annotations

import re
from operator import attrgetter
from typing import TYPE_CHECKING, NamedTuple

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMenu, QToolBar

from sd_studio.ui.icons import icon
from sd_studio.ui.tools import TOOL_CLASSES

if TYPE_CHECKING:
    from PySide6.QtWidgets import QMainWindow

SK = QKeySequence.StandardKey


class ActionSpec(NamedTuple):
    """One command of the window: how it is named, reached and shown, and what it calls."""

    key: str
    text: str
    slot: str = ""  # dotted path on the window; "" for a submenu
    keys: tuple = ()  # QKeySequence.StandardKey or text such as "Ctrl+E", the first is the main one
    icon: str = ""
    menu: str = ""  # "File:open": menu File, group open
    toolbar: str = ""  # "main:file"
    checkable: bool = False
    checked: bool = False
    enabled: bool = True
    group: str = ""  # checkable actions of one group are exclusive
    args: tuple = ()  # passed to the slot (a checkable slot gets the checked state instead)
    submenu: bool = False  # the row is a submenu the window fills (Open Recent)


A = ActionSpec
MENUS = {"File": "&File", "Edit": "&Edit", "View": "&View", "Mask": "&Mask", "Layer": "&Layer", "Tools": "&Tools",
         "Generate": "&Generate", "Help": "&Help"}
"""The menu bar, in order: each menu's name in the table and its title."""
TOOLBARS = {"main": ("Main", "mainToolbar", Qt.ToolBarArea.TopToolBarArea),
            "tools": ("Tools", "toolsToolbar", Qt.ToolBarArea.LeftToolBarArea)}
"""The tool bars: name in the table -> (title, objectName, where)."""

ACTIONS: tuple[ActionSpec, ...] = (
    A("new", "&New...", "session.new_document", (SK.New,), "mdi6.file-outline", "File:open", "main:file"),
    A("open", "&Open...", "session.open_dialog", (SK.Open,), "mdi6.folder-open-outline", "File:open", "main:file"),
    A("recent", "Open &Recent", menu="File:open", submenu=True),
    A("save", "&Save", "session.save", (SK.Save,), "mdi6.content-save-outline", "File:save", "main:file"),
    A("save_as", "Save &As...", "session.save_as", (SK.SaveAs,), "mdi6.content-save-edit-outline", "File:save"),
    A("export", "&Export...", "session.export", ("Ctrl+E",), "mdi6.export", "File:save"),
    A("quit", "&Quit", "close", (SK.Quit, "Ctrl+Q"), "mdi6.exit-to-app", "File:quit"),
    A("undo", "&Undo", "undo", (SK.Undo,), "mdi6.undo", "Edit:history", "main:history"),
    A("redo", "&Redo", "redo", (SK.Redo, "Ctrl+Shift+Z", "Ctrl+Y"), "mdi6.redo", "Edit:history", "main:history"),
    A("copy", "&Copy image", "copy_image", (SK.Copy,), "mdi6.content-copy", "Edit:clipboard"),
    A("paste", "&Paste as layer", "paste_as_layer", (SK.Paste,), "mdi6.content-paste", "Edit:clipboard"),
    A("paste_new", "Paste as new &document", "paste_as_document", ("Ctrl+Shift+V",), "", "Edit:clipboard"),
    A("settings", "Se&ttings...", "open_settings", (SK.Preferences,), "mdi6.cog-outline", "Edit:settings"),
    A("zoom_in", "Zoom &in", "canvas.zoom_in", (SK.ZoomIn, "Ctrl+="), "mdi6.magnify-plus-outline", "View:zoom",
      "main:view"),
    A("zoom_out", "Zoom &out", "canvas.zoom_out", (SK.ZoomOut,), "mdi6.magnify-minus-outline", "View:zoom",
      "main:view"),
    A("zoom_fit", "&Fit to window", "canvas.fit", ("Ctrl+0",), "mdi6.fit-to-screen-outline", "View:zoom", "main:view"),
    A("zoom_100", "&Actual size (100%)", "canvas.actual_size", ("Ctrl+1",), "mdi6.numeric-1-box-outline", "View:zoom"),
    A("show_mask", "Show &mask", "set_show_mask", ("Ctrl+H",), "mdi6.eye-outline", "View:mask", "main:view",
      checkable=True, checked=True),
    A("mask_tint", "Mask as red &tint", "set_mask_display", (), "", "View:mask", checkable=True, checked=True,
      group="mask_display", args=("tint",)),
    A("mask_erased", "Mask as &erased (checkerboard)", "set_mask_display", (), "mdi6.checkerboard", "View:mask",
      checkable=True, group="mask_display", args=("erased",)),
    A("clear_mask", "&Clear mask", "clear_mask", ("Ctrl+Shift+A",), "mdi6.selection-off", "Mask:mask"),
    A("invert_mask", "&Invert mask", "invert_mask", ("Ctrl+I",), "", "Mask:mask"),
    A("grow_mask", "&Grow mask by 8 px", "grow_mask", (), "", "Mask:mask"),
    A("shrink_mask", "&Shrink mask by 8 px", "shrink_mask", (), "", "Mask:mask"),
    A("feather_mask", "&Feather mask by 8 px", "feather_mask", (), "", "Mask:mask"),
    A("new_layer", "&New layer", "layers_panel.add_layer", ("Ctrl+Shift+N",), "mdi6.plus", "Layer:stack"),
    A("duplicate_layer", "&Duplicate layer", "layers_panel.duplicate_layer", ("Ctrl+J",), "mdi6.content-copy",
      "Layer:stack"),
    A("delete_layer", "D&elete layer", "layers_panel.delete_layer", (), "mdi6.delete-outline", "Layer:stack"),
    A("merge_down", "&Merge down", "layers_panel.merge_down", ("Ctrl+Shift+E",), "mdi6.layers-triple-outline",
      "Layer:merge"),
    A("flatten", "&Flatten image", "layers_panel.flatten", (), "mdi6.layers-outline", "Layer:merge"),
    A("use_settings", "&Use these settings", "use_active_layer_settings", (), "mdi6.tune-variant", "Layer:settings"),
    *(A(f"tool_{tool.name}", tool.label, "select_tool", (tool.shortcut,), tool.icon, "Tools:tools", "tools:tools",
        checkable=True, checked=tool is TOOL_CLASSES[0], group="tools", args=(tool.name,)) for tool in TOOL_CLASSES),
    A("bigger", "Bigger brush", "options.bigger", ("]",), "", "Tools:size"),
    A("smaller", "Smaller brush", "options.smaller", ("[",), "", "Tools:size"),
    A("generate", "&Generate", "generation.generate", ("Ctrl+Return", "Ctrl+Enter"), "mdi6.auto-fix", "Generate:run",
      "main:generate"),
    A("cancel", "&Cancel generation", "generation.cancel", ("Esc",), "mdi6.stop-circle-outline", "Generate:run",
      "main:generate", enabled=False),
    A("about", "&About SD Studio", "about", (), "", "Help:about"),
)
"""Every command of the window, in menu order."""


def action_name(action: QAction) -> str:
    """What the incident log calls a menu action: its text without the mnemonic and the dots ("Open")."""
    return re.sub(r"&(.)", r"\1", action.text()).rstrip(".").strip()


def key_sequences(keys: tuple) -> list[QKeySequence]:
    """The key sequences of a row: each standard key's platform bindings and each text, without duplicates."""
    out: list[QKeySequence] = []
    for key in keys:
        standard = isinstance(key, QKeySequence.StandardKey)
        for seq in QKeySequence.keyBindings(key) if standard else [QKeySequence(key)]:
            if not seq.isEmpty() and seq not in out:
                out.append(seq)
    return out


def build_actions(window: QMainWindow, run) -> dict[str, QAction]:
    """A QAction per row (submenus aside), added to the window so its shortcut works with the menu bar hidden;
    run(spec, checked) is called when one is triggered."""
    actions: dict[str, QAction] = {}
    groups: dict[str, QActionGroup] = {}
    for spec in ACTIONS:
        if spec.submenu:
            continue
        action = QAction(spec.text, window, objectName=spec.key)
        action.setShortcuts(key_sequences(spec.keys))
        if spec.icon:
            action.setIcon(icon(spec.icon))
        if spec.keys:  # the tool bars' tips name the key
            shortcut = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            action.setToolTip(f"{action_name(action)} ({shortcut})")
        action.setCheckable(spec.checkable)
        action.setChecked(spec.checked)
        action.setEnabled(spec.enabled)
        if spec.group:
            groups.setdefault(spec.group, QActionGroup(window)).addAction(action)
        action.triggered.connect(lambda checked=False, s=spec: run(s, checked))
        window.addAction(action)
        actions[spec.key] = action
    return actions


def call_slot(window, spec: ActionSpec, checked: bool) -> None:
    """Call a row's slot on the window: with its args, or with the checked state of a checkable row."""
    slot = attrgetter(spec.slot)(window)
    if spec.args:
        slot(*spec.args)
    elif spec.checkable:
        slot(checked)
    else:
        slot()


def build_menus(window: QMainWindow, actions: dict[str, QAction]) -> dict[str, QMenu]:
    """Fill the window's menu bar from the table; returns the menus and submenus by name/key."""
    menus: dict[str, QMenu] = {name: window.menuBar().addMenu(title) for name, title in MENUS.items()}
    last_group: dict[str, str] = {}
    for spec in ACTIONS:
        if not spec.menu:
            continue
        name, _, group = spec.menu.partition(":")
        menu = menus[name]
        if name in last_group and last_group[name] != group:
            menu.addSeparator()
        last_group[name] = group
        if spec.submenu:
            menus[spec.key] = menu.addMenu(spec.text)
        else:
            menu.addAction(actions[spec.key])
    return menus


def build_toolbars(window: QMainWindow, actions: dict[str, QAction]) -> dict[str, QToolBar]:
    """Add the tool bars of the table to the window; returns them by name."""
    bars: dict[str, QToolBar] = {}
    last_group: dict[str, str] = {}
    for name, (title, object_name, area) in TOOLBARS.items():
        bars[name] = QToolBar(title, window, objectName=object_name)
        window.addToolBar(area, bars[name])
    for spec in ACTIONS:
        if not spec.toolbar:
            continue
        name, _, group = spec.toolbar.partition(":")
        if name in last_group and last_group[name] != group:
            bars[name].addSeparator()
        last_group[name] = group
        bars[name].addAction(actions[spec.key])
    return bars
