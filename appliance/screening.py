"""Who gets in and what they hear: the blacklist, withheld numbers, lines not for calls in,
and which flow (a campaign's, or the line's own) a new caller is given."""
import datetime
import re

from . import schedule


class Screening:
    """Decides, for a new caller on a line, whether they are refused and which flow runs."""

    def __init__(self, ctx, line_config):
        self.ctx = ctx
        self._line_config = line_config  # line id -> that line's configuration ({} if none)

    def refusal(self, line_id, number):
        """Why a caller is refused (blacklist, withheld number, a line not for calls in), or None."""
        config = self.ctx.config
        if not self._line_config(line_id).get("inbound", True):
            return "this line does not take calls"
        if not number and config["settings"]["anonymous"] == "block":
            return "the caller's number is withheld"
        for entry in config["blacklist"]:
            pattern = entry["number"]
            if number and (number == pattern or pattern.endswith("*") and number.startswith(pattern[:-1])):
                return f"blacklisted ({pattern})"
        return None

    def flow_for(self, line_id):
        """(flow, campaign id) for a new call on ``line_id``: the campaign's flow while one is on."""
        config = self.ctx.config
        now = datetime.datetime.now(datetime.timezone.utc)
        campaign = schedule.active_campaign(config["campaigns"], line_id, now, self.ctx.timezone)
        flow_id = (campaign or {}).get("flow") or self._line_config(line_id).get("flow")
        flow = next((f for f in config["flows"] if f["id"] == flow_id), None)
        return flow, (campaign or {}).get("id")


def sip_caller(number, uri):
    """Who a caller is: their number, or for a SIP caller without a phone number (a name, a
    PBX extension), their address, by which they are called back and never texted."""
    if not uri or (number and re.fullmatch(r"\+?[0-9]{7,15}", number)):
        return number
    return plain_uri(uri)


def plain_uri(uri):
    """``"Alice" <sip:alice@host:5060;transport=udp>`` as sip:alice@host:5060."""
    found = re.search(r"sips?:[^>;\s]+", uri)
    return found.group() if found else uri
