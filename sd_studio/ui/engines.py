"""Settings > Engines: ComfyUI servers (one, or several as a pool) with a Test button, Amazon Bedrock, SageMaker.

A standalone page (`EnginesPage`) for the settings dialog, and the functions that read what it stored
(`engine_settings`) for the Generate panel's engine box. Addresses and AWS choices live in QSettings
under "engines/"; tokens never do: they go to a TokenStore (the system keyring, or a file only the user
can read). Testing a server runs on a worker thread; the page only shows the answer.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QRunnable, QSettings, Qt, QThreadPool, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from sd_studio.engine.backends.settings import (
    BackendKind,
    BedrockSettings,
    ComfyServerSettings,
    ComfySettings,
    EngineSettings,
    SageMakerSettings,
)

AWS_REGIONS = ("us-east-1", "us-west-2", "us-east-2", "eu-central-1", "eu-west-1", "eu-west-3", "ap-northeast-1",
               "ap-south-1", "ap-southeast-2")
"""Regions offered in the region boxes (any other can be typed): where Bedrock serves image models."""

URL_ROLE = Qt.ItemDataRole.UserRole
CA_ROLE = Qt.ItemDataRole.UserRole + 1
VERIFY_ROLE = Qt.ItemDataRole.UserRole + 2


def comfy_settings(settings: QSettings, tokens=None) -> ComfySettings | None:
    """The ComfyUI servers stored by the page (with their tokens), or None when there are none."""
    tokens = tokens if tokens is not None else _tokens()
    servers = []
    count = settings.beginReadArray("engines/comfyui/servers")
    for i in range(count):
        settings.setArrayIndex(i)
        url = str(settings.value("url", "") or "")
        if url:
            servers.append(ComfyServerSettings(url, tokens.get(url), str(settings.value("ca_file", "") or ""),
                                               _flag(settings.value("verify_tls", True))))
    settings.endArray()
    return ComfySettings(tuple(servers)) if servers else None


def bedrock_settings(settings: QSettings) -> BedrockSettings | None:
    """The Bedrock model and region stored by the page, or None when no model is chosen."""
    model = str(settings.value("engines/bedrock/model_id", "") or "")
    if not model:
        return None
    return BedrockSettings(model, str(settings.value("engines/bedrock/region", "") or ""),
                           str(settings.value("engines/bedrock/profile", "") or ""),
                           str(settings.value("engines/bedrock/search_prompt", "") or ""))


def sagemaker_settings(settings: QSettings) -> SageMakerSettings | None:
    """The SageMaker endpoint stored by the page, or None when there is none."""
    endpoint = str(settings.value("engines/sagemaker/endpoint", "") or "")
    if not endpoint:
        return None
    return SageMakerSettings(endpoint, str(settings.value("engines/sagemaker/region", "") or ""),
                             str(settings.value("engines/sagemaker/profile", "") or ""))


def engine_settings(settings: QSettings, kind: BackendKind | str, tokens=None) -> EngineSettings | None:
    """What the engine box's choice runs on: None for this computer (or an engine not set up yet)."""
    kind = BackendKind(kind)
    if kind is BackendKind.COMFYUI:
        return comfy_settings(settings, tokens)
    if kind is BackendKind.BEDROCK:
        return bedrock_settings(settings)
    if kind is BackendKind.SAGEMAKER:
        return sagemaker_settings(settings)
    return None


def configured_engines(settings: QSettings, tokens=None) -> list[BackendKind]:
    """The engines the engine box may offer: this computer, and each engine the page has set up."""
    return [BackendKind.LOCAL] + [kind for kind in (BackendKind.COMFYUI, BackendKind.BEDROCK, BackendKind.SAGEMAKER)
                                  if engine_settings(settings, kind, tokens) is not None]


class _TestSignals(QObject):
    done = Signal(int, object)  # ticket, ServerReport or BackendError


class _TestTask(QRunnable):
    """Connects to one server on a pool thread and hands back its report (or the error)."""

    def __init__(self, ticket: int, server: ComfyServerSettings) -> None:
        super().__init__()
        self.ticket, self.server = ticket, server
        self.signals = _TestSignals()

    def run(self) -> None:
        """Test the server; never raises."""
        from sd_studio.engine.backends.base import BackendError

        backend = None
        try:
            from sd_studio.engine.backends.comfyui.backend import ComfyBackend

            backend = ComfyBackend([self.server])
            result = backend.test()[0]
        except BackendError as exc:
            result = exc
        except Exception as exc:  # noqa: BLE001 - shown on the page rather than lost on a pool thread
            result = BackendError(f"The test failed ({type(exc).__name__}).")
        finally:
            if backend is not None:
                backend.close()
        self.signals.done.emit(self.ticket, result)


class EnginesPage(QWidget):
    """The Engines page: ComfyUI servers with Test, Amazon Bedrock (region, model), SageMaker (endpoint)."""

    tested = Signal(object)  # the ServerReport or BackendError a Test produced

    def __init__(self, settings: QSettings, tokens=None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.tokens = tokens if tokens is not None else _tokens()
        self._ticket = 0
        self._tasks: dict[int, _TestTask] = {}
        self._pending_tokens: dict[str, str] = {}
        layout = QVBoxLayout(self)
        layout.addWidget(self._comfy_group())
        layout.addWidget(self._bedrock_group())
        layout.addWidget(self._sagemaker_group())
        layout.addStretch(1)
        self.load()

    # --- ComfyUI -------------------------------------------------------------------------------------------

    def _comfy_group(self) -> QGroupBox:
        group = QGroupBox("ComfyUI servers")
        self.servers = QListWidget(objectName="comfyServers")
        self.servers.setToolTip("Several servers are used as one pool: each job goes to the shortest queue")
        self.url = QLineEdit(objectName="comfyUrl", placeholderText="http://gpu-box:8188")
        self.token = QLineEdit(objectName="comfyToken", placeholderText="optional bearer token")
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.ca_file = QLineEdit(objectName="comfyCaFile", placeholderText="CA certificate (PEM) of a private https server")
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse_ca)
        self.verify = QCheckBox("Check the server's certificate", checked=True)
        self.add_button = QPushButton("Add server", objectName="comfyAdd")
        self.add_button.clicked.connect(self.add_server)
        self.remove_button = QPushButton("Remove", objectName="comfyRemove")
        self.remove_button.clicked.connect(self.remove_server)
        self.test_button = QPushButton("Test", objectName="comfyTest")
        self.test_button.setToolTip("Connect to the selected server and show its GPU, checkpoints and samplers")
        self.test_button.clicked.connect(self.test_server)
        self.report = QLabel(objectName="comfyReport", wordWrap=True)
        self.report.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        ca_row = QHBoxLayout()
        ca_row.addWidget(self.ca_file)
        ca_row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Address", self.url)
        form.addRow("Token", self.token)
        form.addRow("CA file", ca_row)
        form.addRow("", self.verify)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addWidget(self.test_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(group)
        layout.addWidget(self.servers)
        layout.addLayout(buttons)
        layout.addLayout(form)
        layout.addWidget(self.report)
        layout.addWidget(QLabel(f"Tokens are kept in {self.tokens.where}, never in the settings file.",
                                wordWrap=True, objectName="tokenHome"))
        return group

    def _browse_ca(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "CA certificate", "", "Certificates (*.pem *.crt);;All files (*)")
        if path:
            self.ca_file.setText(path)

    def add_server(self) -> bool:
        """Add the address typed in the form (checked first); False with the reason shown when it is not one."""
        from sd_studio.engine.backends.base import BackendError
        from sd_studio.engine.backends.comfyui.protocol import ServerAddress

        try:
            address = ServerAddress.parse(self.url.text())
        except BackendError as exc:
            self._show(str(exc), error=True)
            return False
        if address.http in self._urls():
            self._show(f"{address.label} is already in the list.", error=True)
            return False
        item = QListWidgetItem(address.label)
        item.setData(URL_ROLE, address.http)
        item.setData(CA_ROLE, self.ca_file.text().strip())
        item.setData(VERIFY_ROLE, self.verify.isChecked())
        self._pending_tokens[address.http] = self.token.text()
        self._mark_token(item, bool(self.token.text()))
        self.servers.addItem(item)
        self.servers.setCurrentItem(item)
        self.url.clear()
        self.token.clear()
        self.ca_file.clear()
        self._show("")
        return True

    def remove_server(self) -> None:
        """Remove the selected server (its token is forgotten on save)."""
        row = self.servers.currentRow()
        if row >= 0:
            item = self.servers.takeItem(row)
            self._pending_tokens[item.data(URL_ROLE)] = ""

    def test_server(self) -> None:
        """Test the selected server (or the one typed in the form) on a worker thread; the answer shows below."""
        server = self._selected_server()
        if server is None:
            self._show("Select a server, or type its address, then press Test.", error=True)
            return
        self._ticket += 1
        task = _TestTask(self._ticket, server)
        task.signals.done.connect(self._tested)
        self._tasks[self._ticket] = task
        self.test_button.setEnabled(False)
        self._show(f"Connecting to {server.url}...")
        QThreadPool.globalInstance().start(task)

    def _selected_server(self) -> ComfyServerSettings | None:
        item = self.servers.currentItem()
        if self.url.text().strip():
            return ComfyServerSettings(self.url.text().strip(), self.token.text(), self.ca_file.text().strip(),
                                       self.verify.isChecked())
        if item is None:
            return None
        url = item.data(URL_ROLE)
        token = self._pending_tokens.get(url)
        return ComfyServerSettings(url, token if token is not None else self.tokens.get(url), item.data(CA_ROLE) or "",
                                   bool(item.data(VERIFY_ROLE)))

    @Slot(int, object)
    def _tested(self, ticket: int, result) -> None:
        self._tasks.pop(ticket, None)
        if ticket != self._ticket:
            return  # an older test's late answer
        self.test_button.setEnabled(True)
        from sd_studio.engine.backends.base import BackendError

        if isinstance(result, BackendError):
            self._show(str(result), error=True)
        else:
            version = f", ComfyUI {result.version}" if result.version else ""
            checkpoints = ", ".join(result.checkpoints[:8]) + (" ..." if len(result.checkpoints) > 8 else "")
            lines = [f"{result.label}: {result.device}{version}",
                     f"{len(result.checkpoints)} checkpoints: {checkpoints or 'none'}",
                     f"Samplers: {', '.join(result.samplers) or 'none of ours'}",
                     f"Modes: {', '.join(result.modes) or 'none'}"]
            if not result.websocket:
                lines.append("The progress socket did not open: jobs run, but without live progress.")
            self._show("\n".join(lines))
        self.tested.emit(result)

    def _show(self, text: str, error: bool = False) -> None:
        self.report.setText(text)
        self.report.setProperty("error", error)

    def _urls(self) -> list[str]:
        return [self.servers.item(i).data(URL_ROLE) for i in range(self.servers.count())]

    @staticmethod
    def _mark_token(item: QListWidgetItem, has_token: bool) -> None:
        item.setToolTip("token saved" if has_token else "no token")
        label = item.data(URL_ROLE)
        from sd_studio.engine.backends.comfyui.protocol import ServerAddress

        item.setText(ServerAddress(label).label + ("  (token)" if has_token else ""))

    # --- AWS -------------------------------------------------------------------------------------------------

    def _bedrock_group(self) -> QGroupBox:
        from sd_studio.document.geometry import Extent
        from sd_studio.engine.backends.bedrock.catalog import catalog

        group = QGroupBox("Amazon Bedrock")
        self.bedrock_model = QComboBox(objectName="bedrockModel")
        self.bedrock_model.addItem("(not used)", "")
        for model in catalog().values():
            if model.modes:
                price = model.price_per_image(Extent(1024, 1024))
                shown = f"  ${price:.2f}/image" if price is not None else ""
                self.bedrock_model.addItem(f"{model.label} ({', '.join(model.modes)}){shown}", model.id)
        self.bedrock_model.currentIndexChanged.connect(self._bedrock_changed)
        self.bedrock_region = _region_box("bedrockRegion")
        self.bedrock_profile = QLineEdit(objectName="bedrockProfile", placeholderText="default credentials")
        self.bedrock_search = QLineEdit(objectName="bedrockSearch", placeholderText="Search and Replace: what to find")
        self.bedrock_price = QLabel(objectName="bedrockPrice", wordWrap=True)
        form = QFormLayout(group)
        form.addRow("Model", self.bedrock_model)
        form.addRow("Region", self.bedrock_region)
        form.addRow("AWS profile", self.bedrock_profile)
        form.addRow("Search for", self.bedrock_search)
        form.addRow("", self.bedrock_price)
        form.addRow("", QLabel("Credentials come from your AWS configuration (aws configure, aws sso login, or "
                               "the environment); SD Studio never stores them.", wordWrap=True))
        return group

    def _bedrock_changed(self) -> None:
        from sd_studio.document.geometry import Extent
        from sd_studio.engine.backends.bedrock.catalog import catalog

        model = catalog().get(self.bedrock_model.currentData() or "")
        if model is None:
            self.bedrock_price.setText("")
            return
        self.bedrock_price.setText(model.cost(1, Extent(1024, 1024)).note)
        self.bedrock_search.setEnabled(model.api == "stability-search-replace")

    def _sagemaker_group(self) -> QGroupBox:
        group = QGroupBox("Amazon SageMaker (a JumpStart Stable Diffusion endpoint)")
        self.sagemaker_endpoint = QLineEdit(objectName="sagemakerEndpoint", placeholderText="endpoint name")
        self.sagemaker_region = _region_box("sagemakerRegion")
        self.sagemaker_profile = QLineEdit(objectName="sagemakerProfile", placeholderText="default credentials")
        form = QFormLayout(group)
        form.addRow("Endpoint", self.sagemaker_endpoint)
        form.addRow("Region", self.sagemaker_region)
        form.addRow("AWS profile", self.sagemaker_profile)
        form.addRow("", QLabel("An endpoint is billed by the hour it runs, whether or not you generate.",
                               wordWrap=True))
        return group

    # --- storage ---------------------------------------------------------------------------------------------

    def load(self) -> None:
        """Show what QSettings (and the token store) hold."""
        self.servers.clear()
        count = self.settings.beginReadArray("engines/comfyui/servers")
        for i in range(count):
            self.settings.setArrayIndex(i)
            url = str(self.settings.value("url", "") or "")
            if not url:
                continue
            item = QListWidgetItem(url)
            item.setData(URL_ROLE, url)
            item.setData(CA_ROLE, str(self.settings.value("ca_file", "") or ""))
            item.setData(VERIFY_ROLE, _flag(self.settings.value("verify_tls", True)))
            self.servers.addItem(item)
        self.settings.endArray()
        for i in range(self.servers.count()):
            item = self.servers.item(i)
            self._mark_token(item, bool(self.tokens.get(item.data(URL_ROLE))))
        bedrock = bedrock_settings(self.settings)
        index = self.bedrock_model.findData(bedrock.model_id if bedrock else "")
        self.bedrock_model.setCurrentIndex(max(0, index))
        self.bedrock_region.setCurrentText(str(self.settings.value("engines/bedrock/region", "") or ""))
        self.bedrock_profile.setText(str(self.settings.value("engines/bedrock/profile", "") or ""))
        self.bedrock_search.setText(str(self.settings.value("engines/bedrock/search_prompt", "") or ""))
        self._bedrock_changed()
        self.sagemaker_endpoint.setText(str(self.settings.value("engines/sagemaker/endpoint", "") or ""))
        self.sagemaker_region.setCurrentText(str(self.settings.value("engines/sagemaker/region", "") or ""))
        self.sagemaker_profile.setText(str(self.settings.value("engines/sagemaker/profile", "") or ""))

    def save(self) -> None:
        """Store everything: addresses and AWS choices in QSettings, tokens in the token store only."""
        s = self.settings
        s.remove("engines/comfyui/servers")
        s.beginWriteArray("engines/comfyui/servers", self.servers.count())
        for i in range(self.servers.count()):
            item = self.servers.item(i)
            s.setArrayIndex(i)
            s.setValue("url", item.data(URL_ROLE))
            s.setValue("ca_file", item.data(CA_ROLE) or "")
            s.setValue("verify_tls", bool(item.data(VERIFY_ROLE)))
        s.endArray()
        for url, token in self._pending_tokens.items():
            self.tokens.set(url, token)
        self._pending_tokens.clear()
        s.setValue("engines/bedrock/model_id", self.bedrock_model.currentData() or "")
        s.setValue("engines/bedrock/region", self.bedrock_region.currentText().strip())
        s.setValue("engines/bedrock/profile", self.bedrock_profile.text().strip())
        s.setValue("engines/bedrock/search_prompt", self.bedrock_search.text().strip())
        s.setValue("engines/sagemaker/endpoint", self.sagemaker_endpoint.text().strip())
        s.setValue("engines/sagemaker/region", self.sagemaker_region.currentText().strip())
        s.setValue("engines/sagemaker/profile", self.sagemaker_profile.text().strip())
        s.sync()


def _region_box(name: str) -> QComboBox:
    box = QComboBox(objectName=name, editable=True)
    box.addItem("")
    box.addItems(AWS_REGIONS)
    box.lineEdit().setPlaceholderText("from your AWS configuration")
    return box


def _flag(value) -> bool:
    """A boolean from QSettings, which hands INI values back as text."""
    if isinstance(value, str):
        return value.strip().casefold() in ("true", "1", "yes")
    return bool(value)


def _tokens():
    from sd_studio.engine.backends.tokens import TokenStore

    return TokenStore()
