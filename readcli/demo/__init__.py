"""The built-in offline benchmark behind `readcli demo`: synthetic worlds for grounding (tlg) and
summarization (vls), source pretraining with a mastery check, low-resource adaptation of every
method under one protocol (learning rate chosen on dev, paired seeds, test read last), and paired
bootstrap statistics against READ-PVLA. See docs/demo.md.
"""
