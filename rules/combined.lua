-- rules/combined.lua - composites: evidence from independent families of
-- forgery. One odd header can be a quirky mail program; a forged mailer
-- fingerprint AND a fake relay line, or a fake relay line AND an impossible
-- date, come from a tool that writes every header itself. Each family alone
-- keeps its own (moderate) score; only the combination adds this.

local MUA = "(FORGED_OUTLOOK | FORGED_OUTLOOK_HTML | MID_OUTLOOK_NO_MUA | MISSING_MIMEOLE"
  .. " | FORGED_IMS | FORGED_THEBAT | FORGED_OUTLOOK_MID | MID_RATWARE | XMAILER_BAD_VERSION)"
local RCVD = "(RCVD_FORGED_PROVIDER | RCVD_AMPM_DATE | RCVD_BAD_IP | RCVD_ODD_PROTOCOL"
  .. " | RCVD_DATE_DISORDER)"
local DATE = "(DATE_BAD_ZONE | INVALID_DATE | DATE_IN_FUTURE | INVALID_MID)"
local SUBJ = "(SUBJ_PADDED_TOKEN | SUBJ_ADV_TAG)"

-- FORGERY_MULTI: tells from two or more of the four families (mailer
-- fingerprint, relay path, date/id, subject token).
composite{
  name = "FORGERY_MULTI", score = 1.5,
  description = "Forgery tells from two independent header families",
  expression = MUA .. " & (" .. RCVD .. " | " .. DATE .. " | " .. SUBJ .. ") | "
    .. RCVD .. " & (" .. DATE .. " | " .. SUBJ .. ") | " .. DATE .. " & " .. SUBJ,
}

test{
  name = "combined: one family alone is not enough",
  message = [[
From: a@example.net
To: bob@example.org
Subject: offer
Date: Tue, 03 Sep 2002 10:00:00 +0200
Message-ID: <00004ee7187c$00004968$00001798@example.net>

hi
]],
  expect = { "MID_RATWARE", "!FORGERY_MULTI" },
}

test{
  name = "combined: a ratware id and a padded subject token",
  message = [[
From: a@example.net
To: bob@example.org
Subject: Lower your rate              XGHTMTG
Date: Tue, 03 Sep 2002 10:00:00 +0200
Message-ID: <00004ee7187c$00004968$00001798@example.net>

hi
]],
  expect = { "MID_RATWARE", "SUBJ_PADDED_TOKEN", "FORGERY_MULTI" },
}
