"""The relevance benchmark's queries: shopper-like intents, written by hand, and their judgments.

A query is judged from labels people gave the applications, never from their text: the
freedesktop categories (``Game;BoardGame``) and keywords upstream developers assigned in their
AppStream metadata. A :class:`Rule` is a list of clauses; an application matches a clause when it
has every label of the clause (a category, or ``kw:word`` for a keyword), and the rule when it
matches any clause. Grade 2: the intent's exact rule; grade 1: its broader parent rule; 0 else.

Ambiguous queries have one text and two senses; each sense is a query of its own whose user
viewed listings of that sense (chosen by :mod:`datagen.relevanceset`) -- the same words, two
answers, which only personalisation can tell apart.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    clauses: tuple[frozenset[str], ...]

    def matches(self, labels: frozenset[str]) -> bool:
        return any(clause <= labels for clause in self.clauses)


def rule(*clauses: str) -> Rule:
    """``rule("Audio+Player", "kw:jukebox")``: Audio and Player, or the keyword jukebox."""
    return Rule(tuple(frozenset(c.split("+")) for c in clauses))


@dataclass(frozen=True)
class Intent:
    qid: str
    text: str
    exact: Rule  # grade 2
    parent: Rule  # grade 1


# (qid, shopper's words, exact, parent): what someone would type, not an application's name.
INTENTS = (
    Intent("i01", "something to edit my holiday videos",
           rule("AudioVideoEditing+Video", "AudioVideoEditing+kw:video"), rule("Video", "AudioVideoEditing")),
    Intent("i02", "play chess against the computer", rule("kw:chess"), rule("BoardGame")),
    Intent("i03", "fix the colours of my photos", rule("Photography", "RasterGraphics"), rule("Graphics")),
    Intent("i04", "read and send my email", rule("Email", "kw:email", "kw:mail"),
           rule("ContactManagement", "Calendar")),
    Intent("i05", "browse websites", rule("WebBrowser", "kw:browser"), rule("Network")),
    Intent("i06", "look at the stars and planets at night", rule("Astronomy", "kw:astronomy"),
           rule("Science")),
    Intent("i07", "card games like solitaire", rule("kw:solitaire", "kw:patience"), rule("CardGame")),
    Intent("i08", "do quick sums on a calculator", rule("Calculator"), rule("Math")),
    Intent("i09", "write letters and documents", rule("WordProcessor"), rule("Office")),
    Intent("i10", "keep track of my money and bills", rule("Finance"), rule("Office")),
    Intent("i11", "read pdf files", rule("kw:pdf"), rule("Viewer+Office", "Publishing")),
    Intent("i12", "scan paper documents into the computer", rule("Scanning", "OCR"), rule("Graphics")),
    Intent("i13", "zip and unzip files", rule("Archiving", "Compression"), rule("FileTools", "FileManager")),
    Intent("i14", "a command line window", rule("TerminalEmulator"), rule("System")),
    Intent("i15", "write code with autocomplete and a debugger", rule("IDE", "Debugger"),
           rule("Development")),
    Intent("i16", "keep the history of my source code", rule("RevisionControl"), rule("Development")),
    Intent("i17", "make electronic music with synthesizers", rule("kw:synthesizer", "kw:synth"),
           rule("Midi", "Music", "Sequencer")),
    Intent("i18", "record my voice with a microphone", rule("Recorder+Audio", "Recorder+kw:audio"),
           rule("Audio")),
    Intent("i19", "watch television channels on my laptop", rule("TV"), rule("Video")),
    Intent("i20", "maps and gps for hiking", rule("kw:map", "kw:maps", "kw:gps"), rule("Geography")),
    Intent("i21", "learn about molecules and chemical reactions", rule("Chemistry"),
           rule("Science", "Education")),
    Intent("i22", "analyse dna sequences", rule("Biology"), rule("Science")),
    Intent("i23", "learn vocabulary of a foreign language", rule("Languages"), rule("Education")),
    Intent("i24", "look up what a word means", rule("Dictionary"), rule("Languages")),
    Intent("i25", "fun games for young children", rule("KidsGame"), rule("Education")),
    Intent("i26", "help with algebra and geometry homework", rule("Math"), rule("Education", "Science")),
    Intent("i27", "design a printed circuit board", rule("Electronics"), rule("Engineering")),
    Intent("i28", "talk to other amateur radio operators", rule("HamRadio"), rule("Network")),
    Intent("i29", "control another computer remotely", rule("RemoteAccess"), rule("Network")),
    Intent("i30", "download files with torrents", rule("P2P", "kw:torrent"), rule("FileTransfer")),
    Intent("i31", "chat with my friends online", rule("InstantMessaging", "Chat", "IRCClient"),
           rule("Network")),
    Intent("i32", "check my network for security holes", rule("Security"), rule("System")),
    Intent("i33", "see what is using my cpu and memory", rule("Monitor"), rule("System")),
    Intent("i34", "organise my appointments", rule("Calendar"),
           rule("ContactManagement", "ProjectManagement")),
    Intent("i35", "football and other sports games", rule("SportsGame"), rule("Game")),
    Intent("i36", "build an empire and conquer the world", rule("StrategyGame"), rule("Game")),
    Intent("i37", "first person shooter", rule("Shooter", "kw:shooter", "kw:fps"), rule("ActionGame")),
    Intent("i38", "fly an aeroplane", rule("kw:flight", "kw:airplane", "kw:aircraft"),
           rule("Simulation")),
    Intent("i39", "role playing game with quests and dungeons", rule("RolePlaying"),
           rule("AdventureGame")),
    Intent("i40", "point and click adventure", rule("AdventureGame"), rule("RolePlaying")),
    Intent("i41", "falling blocks puzzle", rule("BlocksGame", "kw:tetris"), rule("LogicGame")),
    Intent("i42", "play my old console games", rule("Emulator+Game"), rule("Emulator")),
    Intent("i43", "make 3d models and animations", rule("3DGraphics"), rule("Graphics")),
    Intent("i44", "draw logos and illustrations", rule("VectorGraphics", "2DGraphics"), rule("Graphics")),
    Intent("i45", "typeset my thesis with formulas", rule("kw:latex", "kw:tex"),
           rule("Publishing", "WordProcessor")),
    Intent("i46", "follow news sites and blogs", rule("News", "kw:rss", "kw:feed"), rule("Network")),
    Intent("i47", "help for people who cannot see the screen well", rule("Accessibility"),
           rule("Settings")),
    Intent("i48", "take a picture of my screen", rule("kw:screenshot", "kw:screencast"),
           rule("Recorder")),
    Intent("i49", "store records in tables and run queries", rule("Database"), rule("Office")),
    Intent("i50", "plot charts of my measurements", rule("DataVisualization"), rule("Science", "Math")),
    Intent("i51", "simulate physics experiments", rule("Physics"), rule("Science")),
    Intent("i52", "jot down quick notes", rule("kw:notes", "kw:note", "kw:notebook"), rule("Office")),
    Intent("i53", "edit plain text files", rule("TextEditor"), rule("Development", "Utility")),
    Intent("i54", "engineering drawings and cad", rule("kw:cad", "Engineering"), rule("Science")),
    Intent("i55", "program a robot", rule("Robotics"), rule("Engineering", "Electronics")),
    Intent("i56", "listen to my music collection", rule("Audio+Player"), rule("Audio")),
    Intent("i57", "look at x-ray and mri scans", rule("MedicalSoftware"), rule("Science")),
    Intent("i58", "copy files between computers", rule("FileTransfer"), rule("Network")),
)


@dataclass(frozen=True)
class Ambiguous:
    """One query text, two senses ``(name, exact, parent)``."""

    qid: str
    text: str
    senses: tuple[tuple[str, Rule, Rule], ...]


AMBIGUOUS = (
    Ambiguous("a01", "player", (("music", rule("Audio+Player"), rule("Audio")),
                                ("video", rule("Video+Player"), rule("Video")))),
    Ambiguous("a02", "editor", (("text", rule("TextEditor"), rule("Development")),
                                ("image", rule("RasterGraphics"), rule("Graphics")))),
    Ambiguous("a03", "viewer", (("images", rule("Viewer+Graphics"), rule("Graphics")),
                                ("documents", rule("kw:pdf", "Viewer+Office"), rule("Office")))),
    Ambiguous("a04", "space", (("games", rule("Game+kw:space"), rule("ArcadeGame", "ActionGame")),
                               ("astronomy", rule("Astronomy"), rule("Science")))),
    Ambiguous("a05", "draw", (("pictures", rule("2DGraphics", "VectorGraphics"), rule("Graphics")),
                              ("circuits", rule("Electronics"), rule("Engineering")))),
    Ambiguous("a06", "notes", (("music", rule("Midi", "Sequencer"), rule("Audio")),
                               ("writing", rule("kw:notes", "kw:note"), rule("Office")))),
    Ambiguous("a07", "radio", (("amateur", rule("HamRadio"), rule("Network")),
                               ("listening", rule("Audio+Player", "Audio+kw:radio"), rule("Audio")))),
    Ambiguous("a08", "recorder", (("sound", rule("Recorder+Audio"), rule("Audio")),
                                  ("screen", rule("Recorder+Video", "kw:screencast"), rule("Video")))),
    Ambiguous("a09", "simulator", (("games", rule("Game+Simulation"), rule("Game")),
                                   ("science", rule("Physics", "Electronics"), rule("Science")))),
    Ambiguous("a10", "scanner", (("documents", rule("Scanning"), rule("Graphics")),
                                 ("network", rule("Security"), rule("Network")))),
    Ambiguous("a11", "keyboard", (("music", rule("Midi"), rule("Audio")),
                                  ("typing", rule("Accessibility", "kw:typing"), rule("Education")))),
    Ambiguous("a12", "studio", (("music", rule("Sequencer", "Midi"), rule("Audio")),
                                ("photo", rule("Photography", "RasterGraphics"), rule("Graphics")))),
)
